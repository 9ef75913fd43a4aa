"""A request of several JSON records, one a line, answered one line per record.

The Hugging Face toolkit reads a request as one JSON document, so a MultiRecord batch of
JSON Lines fails there and its users run SingleRecord, one pipeline call per record. Here
such a request is a batch:

* ``records_of`` says whether a request is one: a body that is one JSON document (pretty
  printed or not) is a single request, as in the toolkit; a body of several lines that is
  not one document is JSON Lines, each non-empty line a record.
* Records are grouped by their ``parameters`` (equal JSON, whatever the key order), and a
  record whose ``inputs`` is not a text goes alone. Each group of texts is one call:
  the default ``predict_fn`` gives the pipeline the list of texts (``hf_handlers.
  predict_many``: one element of its answer per text, in the form that text alone gets);
  a group of one is predicted exactly as a single request. A user ``predict_fn`` gets
  every group as ``{"inputs": [...], "parameters": ...}`` (``parameters`` only where the
  records have them) and must return a list with one prediction per input.
* Each record's prediction is encoded by ``output_fn`` on its own, so its line is what that
  record alone would have been answered with; the lines are joined with ``\\n`` and the
  response ends with one. A record's output must be one line: the default JSON always is;
  Accept ``text/csv`` and NPY are refused for a batch, and a user ``output_fn`` value
  that is not bytes or text is written as compact JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchtransform.errors import ModelError
from batchtransform.runtimes import hf_handlers, media, responses

__all__ = ["BATCH_TYPES", "Batch", "records_of"]

BATCH_TYPES = frozenset({media.JSON, media.JSON_LINES})
_LINE_TYPES = frozenset({media.JSON, media.JSON_LINES})


def records_of(payload: bytes) -> list[Any] | None:
    """The records of a batch, or None when ``payload`` is a single request."""
    body = payload.strip()
    if b"\n" not in body:
        return None
    try:
        json.loads(body)
    except ValueError:
        pass
    else:
        return None
    lines = [line for line in body.split(b"\n") if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            message = (
                f"line {number} of the request is not JSON ({exc}); a request of several "
                "lines that is not one JSON document is read as JSON Lines, a record a line"
            )
            raise ModelError(message, status=400, body=message) from exc
    return records


@dataclass
class _Group:
    """Records predicted in one call: texts with equal parameters, or one record."""

    parameters: Any
    indexes: list[int] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)


def _groups(records: list[Any]) -> list[_Group]:
    groups: dict[tuple[str, Any], _Group] = {}
    for index, record in enumerate(records):
        inputs, parameters = hf_handlers.split_request(record)
        key: tuple[str, Any] = (
            ("texts", json.dumps(parameters, sort_keys=True))
            if isinstance(inputs, str)
            else ("alone", index)
        )
        group = groups.setdefault(key, _Group(parameters))
        group.indexes.append(index)
        group.records.append(record)
        group.inputs.append(inputs)
    return list(groups.values())


@dataclass(frozen=True)
class Batch:
    """How to predict and encode, from the runtime's handlers: ``predict(data)`` and
    ``encode(prediction)`` call the handler in use (the user's or the default), and the
    two flags say whether that is the default."""

    predict: Callable[[Any], Any]
    encode: Callable[[Any], Any]
    default_predict: bool
    default_output: bool
    model: Any
    environment: Mapping[str, str]

    def run(self, records: list[Any], accept: str) -> tuple[bytes, str | None]:
        """The response: one line per record, in order, and its content type."""
        if self.default_output:
            _check_line_accept(accept)
        predictions: list[Any] = [None] * len(records)
        for group in _groups(records):
            for index, prediction in zip(group.indexes, self._predict(group), strict=True):
                predictions[index] = prediction
        lines, content_type = [], None
        for number, prediction in enumerate(predictions, 1):
            body, answered = responses.response_body(self.encode(prediction), None)
            lines.append(_one_line(body, number))
            content_type = content_type or answered
        return b"\n".join(lines) + b"\n", content_type

    def _predict(self, group: _Group) -> list[Any]:
        if self.default_predict:
            if len(group.records) == 1:
                return [self.predict(group.records[0])]
            return hf_handlers.predict_many(
                self.model, group.inputs, group.parameters, self._batch_size()
            )
        data: dict[str, Any] = {"inputs": list(group.inputs)}
        if group.parameters is not None:
            data["parameters"] = group.parameters
        predictions = self.predict(data)
        if not isinstance(predictions, list) or len(predictions) != len(group.inputs):
            got = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
            raise ModelError(
                f"predict_fn was given {len(group.inputs)} inputs of a MultiRecord batch "
                f"(data['inputs'] is a list) and returned {got}: it must return a list with "
                "one prediction per input, or run the job with BatchStrategy SingleRecord",
                status=400,
            )
        return predictions

    def _batch_size(self) -> int:
        """Texts per forward pass: the container's BATCHTRANSFORM_HF_BATCH_SIZE, else 32."""
        value = self.environment.get(hf_handlers.BATCH_SIZE_ENV)
        try:
            size = int(value) if value else hf_handlers.DEFAULT_BATCH_SIZE
        except ValueError:
            size = 0
        if size < 1:
            raise ModelError(
                f"{hf_handlers.BATCH_SIZE_ENV}={value!r} is not a positive number", status=400
            )
        return size


def _check_line_accept(accept: str) -> None:
    kind = hf_handlers.output_type(accept)
    if kind not in _LINE_TYPES:
        message = (
            f"Accept {accept!r} writes {kind}, which cannot hold a batch of records one line "
            "each: use Accept application/json or application/jsonlines, or BatchStrategy "
            "SingleRecord"
        )
        raise ModelError(message, status=400, body=message)


def _one_line(body: bytes, number: int) -> bytes:
    line = body[:-1] if body.endswith(b"\n") else body
    line = line[:-1] if line.endswith(b"\r") else line
    if b"\n" in line:
        message = (
            f"output_fn's answer for record {number} of the batch spans several lines; in a "
            "MultiRecord batch each record's answer must be one line"
        )
        raise ModelError(message, status=400, body=message)
    return line
