"""The JSONPath subset of SageMaker's InputFilter and OutputFilter (reference §5.2).

General JSONPath libraries disagree with SageMaker on the forms that matter (Jayway's slice
end is exclusive, and most libraries reject ``$[0,2:]``), so the subset is parsed and
evaluated here, on JSON values and on CSV rows (a row is a list of strings).

Supported: ``$`` (required first), ``.name``, ``.*`` and ``[*]``, ``['a']`` and
``['a','b']`` (double quotes work too), ``[n]`` and ``[n,m,...]`` with negative indexes
counted from the end, and ``[start:end]`` with either end optional. Our choices where the
documentation is unsure:

* **A slice end is inclusive**, as the AWS prose says: ``$[1:4]`` selects indexes 1 to 4,
  ``$[:5]`` indexes 0 to 5 (the operator table's JavaScript comparison would exclude the
  end; ``$[1:]`` means the same either way). Negative slice bounds count from the end,
  and a slice reaching past either end is clipped rather than an error.
* **One range may join an index list** in the same bracket, in any position: ``$[0,2:]``
  (the API's own example) gives index 0 then indexes 2 to the end. Two ranges in one
  bracket are rejected, as the service rejects ``$[0:2,246:]``.
* **Several names in one bracket give an object** with just those members, in the order
  named: ``$['id','SageMakerOutput']`` on a joined record gives
  ``{"id": ..., "SageMakerOutput": ...}``. A name in brackets may not contain ``.``: nested
  paths inside brackets are unsupported, as the docs say.
* **What a path selects**: a path of names and single indexes selects one value; a
  wildcard, an index list or a slice anywhere makes it select a list of the values found.
* **Missing is an error**: a missing member, an index out of range, or a name applied to
  something that is not an object fails the record (the OutputFilter doc makes an index
  outside the record an error; we treat names the same way so nothing is dropped silently).

Parse errors are ValueError ``Invalid JsonPath: <expression>: <reason>``; evaluation
errors are ValueError with the reason alone, for the caller to place at its record.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_LENGTH", "JsonPath", "parse_jsonpath"]

MAX_LENGTH = 63  # the JsonPath shape's limit in the service model

_NAME = re.compile(r"[^.\[\]'\"\s()*,?@:]+")
_INTEGER = re.compile(r"-?\d+")
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")


@dataclass(frozen=True)
class Slice:
    """``[start:end]`` with an inclusive end; None is open on that side."""

    start: int | None
    end: int | None

    def indexes(self, length: int) -> range:
        start = 0 if self.start is None else _from_end(self.start, length)
        end = length - 1 if self.end is None else _from_end(self.end, length)
        return range(max(start, 0), min(end, length - 1) + 1)


@dataclass(frozen=True)
class Names:
    """``.name`` or ``['a', 'b']``: one member, or an object of several."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Wildcard:
    """``.*`` or ``[*]``: every member value of an object, every element of an array."""


@dataclass(frozen=True)
class Indexes:
    """``[n]``, ``[n,m,...]``, ``[a:b]`` or a mix with one range."""

    selectors: tuple[int | Slice, ...]

    @property
    def single(self) -> bool:
        return len(self.selectors) == 1 and isinstance(self.selectors[0], int)


Segment = Names | Wildcard | Indexes


def _from_end(index: int, length: int) -> int:
    return index + length if index < 0 else index


@dataclass(frozen=True)
class JsonPath:
    """A parsed expression; ``select`` applies it to a JSON value or a CSV row."""

    text: str
    segments: tuple[Segment, ...]

    @property
    def is_root(self) -> bool:
        """``$`` alone: selects the whole record, so a stage using it can be skipped."""
        return not self.segments

    @property
    def uses_names(self) -> bool:
        """Whether it selects members by name, which a CSV row (an array) cannot have."""
        return any(isinstance(segment, Names) for segment in self.segments)

    def select(self, value: Any) -> Any:
        """The part of ``value`` the path selects; ValueError says why it cannot."""
        nodes, definite = [value], True
        for segment in self.segments:
            step = _step(segment)
            nodes = [found for node in nodes for found in step(node)]
            definite = definite and _is_definite(segment)
        return nodes[0] if definite else nodes


def _is_definite(segment: Segment) -> bool:
    return isinstance(segment, Names) or (isinstance(segment, Indexes) and segment.single)


def _step(segment: Segment) -> Callable[[Any], list[Any]]:
    if isinstance(segment, Names):
        return functools.partial(_select_names, segment.names)
    if isinstance(segment, Indexes):
        return functools.partial(_select_indexes, segment.selectors)
    return _select_all


def _select_names(names: tuple[str, ...], node: Any) -> list[Any]:
    if not isinstance(node, dict):
        raise ValueError(f"{_quote_names(names)} needs an object, found {_kind(node)}")
    missing = [name for name in names if name not in node]
    if missing:
        raise ValueError(f"the object has no member {_quote_names(tuple(missing))}")
    if len(names) == 1:
        return [node[names[0]]]
    return [{name: node[name] for name in names}]


def _select_all(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node.values())
    if isinstance(node, list):
        return list(node)
    raise ValueError(f"* needs an object or an array, found {_kind(node)}")


def _select_indexes(selectors: tuple[int | Slice, ...], node: Any) -> list[Any]:
    if not isinstance(node, list):
        raise ValueError(f"an index needs an array, found {_kind(node)}")
    found: list[Any] = []
    for selector in selectors:
        if isinstance(selector, Slice):
            found.extend(node[index] for index in selector.indexes(len(node)))
            continue
        index = _from_end(selector, len(node))
        if not 0 <= index < len(node):
            raise ValueError(
                f"index {selector} is out of range for an array of {len(node)} elements"
            )
        found.append(node[index])
    return found


def _quote_names(names: tuple[str, ...]) -> str:
    return ", ".join(repr(name) for name in names)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


# --- parsing -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def parse_jsonpath(text: str) -> JsonPath:
    """Parse an InputFilter or OutputFilter; ValueError names the expression and the reason.

    Cached, since every object of a job parses the same two expressions.
    """
    try:
        return JsonPath(text, tuple(_Parser(text).segments()))
    except ValueError as exc:
        raise ValueError(f"Invalid JsonPath: {text}: {exc}") from None


class _Parser:
    """A left-to-right scanner over one expression; ``pos`` is the next character."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def segments(self) -> list[Segment]:
        if len(self.text) > MAX_LENGTH:
            raise ValueError(f"it is {len(self.text)} characters; the limit is {MAX_LENGTH}")
        if not self.text.startswith("$"):
            raise ValueError("it must start with $ (the root)")
        self.pos = 1
        found: list[Segment] = []
        while self.pos < len(self.text):
            found.append(self._segment())
        return found

    def _segment(self) -> Segment:
        char = self.text[self.pos]
        if self.text.startswith("..", self.pos):
            raise ValueError("recursive descent (..) is not supported")
        if char == ".":
            self.pos += 1
            return self._dotted()
        if char == "[":
            self.pos += 1
            segment = self._bracket()
            self._expect("]")
            return segment
        raise ValueError(f"unexpected {char!r} at position {self.pos}; expected . or [")

    def _dotted(self) -> Segment:
        if self.text.startswith("*", self.pos):
            self.pos += 1
            return Wildcard()
        match = _NAME.match(self.text, self.pos)
        if match is None:
            raise self._unsupported("a name or * after .")
        self.pos = match.end()
        if self.text.startswith("(", self.pos):
            raise ValueError(f"functions such as {match.group()}() are not supported")
        return Names((match.group(),))

    def _bracket(self) -> Segment:
        self._skip_spaces()
        if self.text.startswith("*", self.pos):
            self.pos += 1
            self._skip_spaces()
            return Wildcard()
        if self.text.startswith(("'", '"'), self.pos):
            return Names(tuple(self._listed(self._quoted_name)))
        return self._indexes(tuple(self._listed(self._selector)))

    def _listed(self, item: Callable[[], Any]) -> list[Any]:
        """Comma-separated items up to (not including) the closing bracket."""
        items = [item()]
        self._skip_spaces()
        while self.text.startswith(",", self.pos):
            self.pos += 1
            self._skip_spaces()
            items.append(item())
            self._skip_spaces()
        return items

    def _quoted_name(self) -> str:
        match = _QUOTED.match(self.text, self.pos)
        if match is None:
            raise self._unsupported("a quoted name ('name')")
        name = match.group(1) if match.group(1) is not None else match.group(2)
        if "." in name:
            raise ValueError(
                f"nested paths inside brackets are not supported ({name!r}); "
                "write $.a['b','c'] rather than $['a.b']"
            )
        self.pos = match.end()
        return name

    def _selector(self) -> int | Slice:
        start = self._integer()
        if not self.text.startswith(":", self.pos):
            if start is None:
                raise self._unsupported("an index, a range (start:end), * or a quoted name")
            return start
        self.pos += 1
        end = self._integer()
        if self.text.startswith(":", self.pos):
            raise ValueError("slice steps (start:end:step) are not supported")
        return Slice(start, end)

    def _integer(self) -> int | None:
        match = _INTEGER.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return int(match.group())

    def _indexes(self, selectors: tuple[int | Slice, ...]) -> Indexes:
        ranges = [s for s in selectors if isinstance(s, Slice)]
        if len(ranges) > 1:
            raise ValueError(
                "only one range is supported in a bracket, as in $[1:5] or $[0,2:]; "
                f"this one has {len(ranges)}"
            )
        return Indexes(selectors)

    def _expect(self, char: str) -> None:
        self._skip_spaces()
        if not self.text.startswith(char, self.pos):
            raise self._unsupported(repr(char))
        self.pos += 1

    def _skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def _unsupported(self, expected: str) -> ValueError:
        if self.pos >= len(self.text):
            return ValueError(f"it ends early; expected {expected}")
        found = self.text[self.pos]
        if found in "?@(":
            return ValueError("filter expressions ([?(...)]) and functions are not supported")
        return ValueError(f"unexpected {found!r} at position {self.pos}; expected {expected}")
