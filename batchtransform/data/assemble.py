"""Join the model's responses for one object into its ``.out`` bytes, by AssembleWith.

``None`` concatenates the responses byte for byte, as SageMaker does: a response without a
trailing newline runs straight into the next one.

``Line`` follows the reference's recommendation (§6.2): a ``\\n`` goes after each response
unless it already ends with one, so containers that terminate their own output (XGBoost)
are not doubled and those that strip it still get one line per response. An empty response
still marks its place with a ``\\n``, so the output keeps one line per request and
SingleRecord output stays line-aligned with its input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["assemble"]


def assemble(responses: Iterable[bytes], assemble_with: str) -> Iterator[bytes]:
    """Yield the output chunks for ``responses`` in order; AssembleWith is checked when called.

    Responses are passed on rather than copied: a newline is yielded as its own chunk.
    """
    if assemble_with == "None":
        return _concatenated(responses)
    if assemble_with == "Line":
        return _line_terminated(responses)
    raise ValueError(f"unknown AssembleWith {assemble_with!r}; expected 'None' or 'Line'")


def _concatenated(responses: Iterable[bytes]) -> Iterator[bytes]:
    yield from responses


def _line_terminated(responses: Iterable[bytes]) -> Iterator[bytes]:
    for response in responses:
        if response:
            yield response
        if not response.endswith(b"\n"):
            yield b"\n"
