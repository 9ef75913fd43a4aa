"""Split a decompressed object into records, by SplitType.

Each SplitType is a splitter function plus the separator that joins its records again in a
MultiRecord payload, kept in one registry. The framed types (``recordio``, ``tfrecord``)
have a second splitter for records without their framing: SingleRecord sends the bare
record, MultiRecord the records with their framing intact (reference §3.6), so which form
a record takes is decided here, once, and records stay plain bytes for every SplitType.

Our ``Line`` rules, where the service leaves them open (reference §3.6):

* A record is the line's content *without* its ``\\n``; a ``\\r`` right before the ``\\n`` is
  dropped too, so a CRLF file gives the same records as an LF file. MultiRecord payloads
  join records with ``\\n``, so a payload reads exactly like the lines of the file.
* A last line without ``\\n`` is still a record, and keeps a trailing ``\\r`` (no terminator
  means nothing to strip).
* Empty lines (nothing, or only ``\\r``, before the ``\\n``) are not records: a blank line in
  a CSV or JSON Lines file is no input a model could answer. Record numbers in errors count
  only real records; whitespace-only lines are real records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from batchtransform.data import recordio, tfrecord
from batchtransform.data.batch import in_blocks
from batchtransform.data.framing import describe_limit
from batchtransform.errors import DataError

__all__ = ["describe_limit", "record_separator", "split_blocks", "split_records"]

Splitter = Callable[[Iterable[bytes], int | None], Iterator[bytes]]
BlockSplitter = Callable[[Iterable[bytes], int | None], Iterator[list[bytes]]]


def split_records(
    chunks: Iterable[bytes],
    split_type: str,
    max_record_bytes: int | None = None,
    *,
    framed: bool = True,
) -> Iterator[bytes]:
    """Yield the records of a decompressed byte stream for a SplitType.

    ``max_record_bytes`` (None = no limit) fails the object with DataError as soon as one
    record is known to be bigger (in the form yielded), without reading further.
    ``framed=False`` strips RecordIO and TFRecord framing; other types have none. The
    SplitType is checked when called: an unknown one raises ValueError.
    """
    entry = _split_type(split_type)
    split = entry.split if framed or entry.split_bare is None else entry.split_bare
    return split(chunks, max_record_bytes)


def split_blocks(
    chunks: Iterable[bytes],
    split_type: str,
    max_record_bytes: int | None = None,
    *,
    framed: bool = True,
) -> Iterator[list[bytes]]:
    """The records of ``split_records``, in lists of consecutive records.

    The same records in the same order; handing them on a list at a time lets the stages
    after split do their per-record work in C (``map``, ``join``, slicing) rather than in a
    Python loop per record, which is most of the cost for short lines.
    """
    entry = _split_type(split_type)
    if entry.split_blocks is not None:
        return entry.split_blocks(chunks, max_record_bytes)
    return in_blocks(split_records(chunks, split_type, max_record_bytes, framed=framed))


def record_separator(split_type: str) -> bytes:
    """What joins consecutive records of this SplitType in a MultiRecord payload."""
    return _split_type(split_type).separator


@dataclass(frozen=True)
class _SplitType:
    split: Splitter
    separator: bytes
    split_bare: Splitter | None = None  # records without their framing, for framed types
    split_blocks: BlockSplitter | None = None  # the records in lists, where that is natural


def _split_type(name: str) -> _SplitType:
    try:
        return _SPLIT_TYPES[name]
    except KeyError:
        known = ", ".join(repr(known) for known in _SPLIT_TYPES)
        raise ValueError(f"unknown SplitType {name!r}; expected one of {known}") from None


def _split_whole(chunks: Iterable[bytes], max_record_bytes: int | None) -> Iterator[bytes]:
    """SplitType None: the whole object is one record, even an empty one.

    A zero-byte object still yields one empty record, so it gets one request and one output.
    """
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if max_record_bytes is not None and size > max_record_bytes:
            raise DataError(
                f"with SplitType=None the whole object is one record, and this one is larger "
                f"than {describe_limit(max_record_bytes)}; split it (e.g. SplitType=Line) or "
                f"set MaxPayloadInMB=0 for no limit",
                record=1,
            )
        parts.append(chunk)
    yield b"".join(parts)


def _split_lines(chunks: Iterable[bytes], max_record_bytes: int | None) -> Iterator[bytes]:
    """SplitType Line: see the module docstring for what a record is."""
    for block in _split_line_blocks(chunks, max_record_bytes):
        yield from block


def _split_line_blocks(
    chunks: Iterable[bytes], max_record_bytes: int | None
) -> Iterator[list[bytes]]:
    """SplitType Line, a list of records per chunk: the lines that chunk completes."""
    lines = _LineSplitter(max_record_bytes)
    for chunk in chunks:
        block = lines.feed(chunk)
        if block:
            yield block
    last = lines.finish()
    if last:
        yield last


class _LineSplitter:
    """Line-splitting state carried between chunks: the partial last line and positions.

    Whole chunks are split with ``bytes.split`` so the per-byte work stays in C; positions
    of individual lines are only worked out again when a line turns out too long.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.pending: list[bytes] = []  # pieces of the line not yet ended by "\n"
        self.pending_size = 0
        self.line_offset = 0  # stream offset where the pending (next) line starts
        self.records = 0  # records completed so far

    def feed(self, chunk: bytes) -> list[bytes]:
        """Take one chunk; return the records it completes."""
        *lines, last = chunk.split(b"\n")
        records: list[bytes] = []
        if lines:
            carriage_return = b"\r" in chunk or any(b"\r" in piece for piece in self.pending)
            lines[0] = b"".join([*self.pending, lines[0]])
            self.pending, self.pending_size = [], 0
            records = line_records(lines, carriage_return)
            self._check_lines(lines, records)
            self.line_offset += sum(map(len, lines)) + len(lines)
            self.records += len(records)
        if last:
            self._hold(last)
        return records

    def finish(self) -> list[bytes]:
        """End of stream: the unterminated last line, if any, is a record as it stands."""
        if not self.pending:
            return []
        record = b"".join(self.pending)
        if self.limit is not None and len(record) > self.limit:
            raise line_too_long(len(record), self.limit, self.records + 1, self.line_offset)
        self.records += 1
        return [record]

    def _hold(self, piece: bytes) -> None:
        """Keep a partial line, failing once it is certain to be too long.

        A trailing "\\r" may still be dropped if "\\n" follows, so it does not count yet.
        """
        self.pending.append(piece)
        self.pending_size += len(piece)
        size = self.pending_size - piece.endswith(b"\r")
        if self.limit is not None and size > self.limit:
            raise line_too_long(size, self.limit, self.records + 1, self.line_offset, ended=False)

    def _check_lines(self, lines: list[bytes], records: list[bytes]) -> None:
        if self.limit is None or not records or max(map(len, records)) <= self.limit:
            return
        offset, number = self.line_offset, self.records
        for line in lines:
            record = line.removesuffix(b"\r")
            if record:
                number += 1
                if len(record) > self.limit:
                    raise line_too_long(len(record), self.limit, number, offset)
            offset += len(line) + 1


def line_too_long(
    size: int, limit: int, record: int, offset: int | None, ended: bool = True
) -> DataError:
    """The error for a Line record over the payload limit (``ended``: its newline was seen)."""
    length = f"{size} bytes" if ended else f"already {size} bytes without a newline"
    return DataError(
        f"line is {length}, larger than {describe_limit(limit)}; every line must fit in one "
        f"request",
        record=record,
        offset=offset,
    )


def line_records(lines: list[bytes], carriage_return: bool = True) -> list[bytes]:
    """The records among complete lines: terminators stripped, empty lines skipped.

    Without any "\r" in the lines (the common case) only empty lines need dropping, which
    ``filter`` does in C.
    """
    if not carriage_return:
        return list(filter(None, lines))
    stripped = (line.removesuffix(b"\r") for line in lines)
    return [record for record in stripped if record]


_SPLIT_TYPES: dict[str, _SplitType] = {
    "None": _SplitType(_split_whole, b""),
    "Line": _SplitType(_split_lines, b"\n", split_blocks=_split_line_blocks),
    # Framed types: MultiRecord payloads keep each record's framing, so nothing joins them.
    "RecordIO": _SplitType(recordio.split_frames, b"", recordio.split_payloads),
    "TFRecord": _SplitType(tfrecord.split_frames, b"", tfrecord.split_payloads),
}
