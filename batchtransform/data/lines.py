"""MultiRecord batches of Line records, cut straight from the byte stream.

The common job (SplitType Line, MultiRecord, no DataProcessing) needs no record as an
object of its own: a MultiRecord payload is its records joined by ``\\n``, which is exactly
the file's bytes from the first record's start to the last one's end, as long as those
lines hold no ``\\r`` and no empty line. So the stream is kept as such *normalised* lines in
one buffer, and each batch is the longest run of whole lines that fits the limit, found
with one ``rfind``. Stretches that do hold ``\\r`` or empty lines are normalised first (the
records of ``split``'s Line rules, joined by ``\\n``), so the batches are exactly those of
``split_records`` + ``batch_records``; the per-byte work stays in C either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from batchtransform.data.batch import Batch
from batchtransform.data.split import line_records, line_too_long

__all__ = ["line_batches"]

_NEWLINE = ord("\n")
_EMPTY_LINE = int.from_bytes(b"\n\n", "little")  # "\n\n" as one uint16, either byte order


def line_batches(chunks: Iterable[bytes], limit: int) -> Iterator[Batch]:
    """The MultiRecord batches of a Line-split stream with a payload limit (> 0)."""
    if limit <= 0:
        raise ValueError(f"line_batches needs a positive payload limit, not {limit}")
    return _LineBatcher(limit).run(chunks)


class _LineBatcher:
    """The buffer of normalised complete lines, the partial line after it, and counters."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines = bytearray()  # complete records, each ended by "\n"
        self.partial = bytearray()  # bytes after the last "\n" seen
        self.records = 0  # records already sent in batches
        self.offset = 0  # stream offset of the first byte of ``lines``, while it is exact
        self.exact = True  # False once normalising has changed bytes: offsets unknown

    def run(self, chunks: Iterable[bytes]) -> Iterator[Batch]:
        for chunk in chunks:
            self._take(chunk)
            yield from self._full_batches()
        if self.partial:  # the last line has no "\n": a record as it stands
            self.lines += self.partial
            self.lines += b"\n"
        yield from self._full_batches()
        if self.lines:
            yield self._cut(len(self.lines) - 1)

    def _take(self, chunk: bytes) -> None:
        end = chunk.rfind(b"\n")
        if end < 0:
            self.partial += chunk
            self._check_partial()
            return
        start = len(self.lines)
        self.lines += self.partial
        self.lines += memoryview(chunk)[: end + 1]
        self.partial = bytearray(memoryview(chunk)[end + 1 :])
        if self._irregular(start):
            self.lines[start:] = _normalised(bytes(self.lines[start:]))
            self.exact = False

    def _irregular(self, start: int) -> bool:
        """Whether the lines from ``start`` hold a "\r" or an empty line.

        The buffer before ``start`` ends with "\n", so an empty first line shows as "\n\n"
        from ``start - 1``.
        """
        lines = self.lines
        return (
            lines.find(b"\r", start) >= 0
            or (start == 0 and lines.startswith(b"\n"))
            or _holds_empty_line(memoryview(lines)[max(start - 1, 0) :])
        )

    def _full_batches(self) -> Iterator[Batch]:
        """Every batch that can no longer grow: the buffer holds more than the limit."""
        while len(self.lines) > self.limit:
            end = self.lines.rfind(b"\n", 0, self.limit + 1)
            if end < 0:  # the first record alone is over the limit
                length = self.lines.find(b"\n")
                raise line_too_long(length, self.limit, self.records + 1, self._offset(0))
            yield self._cut(end)

    def _cut(self, end: int) -> Batch:
        """The batch of the lines before ``end`` (a "\\n" position), removed from the buffer."""
        with memoryview(self.lines) as view:
            payload = view[:end].tobytes()
        count = _newlines(payload) + 1
        batch = Batch(payload, self.records + 1, count)
        del self.lines[: end + 1]
        self.records += count
        self.offset += end + 1
        return batch

    def _check_partial(self) -> None:
        """A line that never ends must not be buffered without bound."""
        size = len(self.partial) - self.partial.endswith(b"\r")
        if size > self.limit:
            number = self.records + self.lines.count(b"\n") + 1
            offset = self._offset(len(self.lines))
            raise line_too_long(size, self.limit, number, offset, ended=False)

    def _offset(self, position: int) -> int | None:
        """The stream offset of a buffer position, while normalising has changed nothing."""
        return self.offset + position if self.exact else None


def _newlines(data: bytes) -> int:
    """How many "\\n" ``data`` holds: numpy's vector compare is three times ``bytes.count``."""
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == _NEWLINE))


def _holds_empty_line(data: memoryview) -> bool:
    """Whether ``data`` holds "\\n\\n", as two-byte words at even and at odd offsets.

    ``bytes.find`` of a two-byte needle runs near 1 GB/s; these two vector compares run
    at several, and the check reads every byte of the input. The arrays are views of
    ``data``, gone when this returns, so its buffer can be resized again.
    """
    with data:
        even = np.frombuffer(data, np.uint16, count=len(data) // 2)
        odd = np.frombuffer(data, np.uint16, count=(len(data) - 1) // 2, offset=1)
        return bool((even == _EMPTY_LINE).any() or (odd == _EMPTY_LINE).any())


def _normalised(complete: bytes) -> bytes:
    """Complete lines as Line records each ended by "\\n", by ``split``'s own rules."""
    kept = line_records(complete.split(b"\n")[:-1])
    return b"\n".join(kept) + b"\n" if kept else b""
