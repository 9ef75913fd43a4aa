"""What the splitters share: exact-size reads from chunks, and how limits are named.

RecordIO and TFRecord frames have headers of a fixed size and bodies whose size a header
gives, while the chunks arrive in whatever sizes the store and the decompressor chose.
``ByteReader`` hides that, and knows the stream offset of every byte, so a framing error
can say where the damage is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from batchtransform.errors import DataError

__all__ = ["MIB", "ByteReader", "describe_limit", "record_too_large"]

MIB = 1024 * 1024


def describe_limit(limit: int) -> str:
    """Name a byte limit the way the user set it: ``MaxPayloadInMB=6 (6291456 bytes)``."""
    if limit % MIB == 0:
        return f"MaxPayloadInMB={limit // MIB} ({limit} bytes)"
    return f"the payload limit of {limit} bytes"


def record_too_large(size: int, limit: int, number: int, offset: int) -> DataError:
    """The error for a framed record known (from its header) to exceed the payload limit."""
    return DataError(
        f"record is {size} bytes as sent, larger than {describe_limit(limit)}; a record "
        "must fit in one request",
        record=number,
        offset=offset,
    )


class ByteReader:
    """Reads exact byte counts from ``chunks``, tracking the offset in the whole stream.

    Unread bytes sit in one buffer; consumed bytes are dropped only when more must be
    appended, so reading many small frames from one chunk does not copy the chunk again
    and again.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self._start = 0  # first unread byte in _buffer
        self.offset = 0  # stream offset of the next byte ``read`` returns

    def at_end(self) -> bool:
        """Whether the stream has no byte left (reads ahead one chunk to find out)."""
        return not self._available(1)

    def read(self, size: int) -> bytes:
        """The next ``size`` bytes, or fewer only where the stream ends."""
        self._available(size)
        end = min(self._start + size, len(self._buffer))
        with memoryview(self._buffer) as view:
            data = bytes(view[self._start : end])
        self.offset += end - self._start
        self._start = end
        return data

    def _available(self, size: int) -> bool:
        """Fill the buffer until ``size`` unread bytes are there or the stream is over."""
        while len(self._buffer) - self._start < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                return False
            if self._start:
                del self._buffer[: self._start]
                self._start = 0
            self._buffer += chunk
        return True


RecordReader = Callable[["ByteReader", int, "int | None", bool], bytes]
"""Reads one record (its 1-based number given) from the reader: framed, or data alone."""


def read_records(
    chunks: Iterable[bytes], limit: int | None, framed: bool, read_record: RecordReader
) -> Iterator[bytes]:
    """Every record of a framed stream, read one after the other until the stream ends."""
    reader = ByteReader(chunks)
    number = 0
    while not reader.at_end():
        number += 1
        yield read_record(reader, number, limit, framed)
