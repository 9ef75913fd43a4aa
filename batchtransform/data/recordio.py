"""SplitType RecordIO: MXNet/dmlc-core record framing (reference §3.6).

Each frame is ``uint32 magic 0xCED7230A`` (little-endian), ``uint32 lrec`` (upper 3 bits
``cflag``, lower 29 bits the length), the data, then zero padding to a 4-byte boundary.
``cflag`` 0 is a whole record; 1, 2 and 3 are the start, middle and end of a record that a
writer split wherever the magic number appeared 4-byte-aligned in its data. dmlc's reader
rebuilds such a record by putting the magic number back between the parts, and so do we.

Two forms of the same records, chosen by BatchStrategy:

* ``split_frames`` (MultiRecord): each logical record's frames exactly as in the file,
  headers and padding included, so a MultiRecord payload is a valid RecordIO stream.
* ``split_payloads`` (SingleRecord): the bare record, parts rejoined and padding dropped.
  The API says only "padding is removed"; we also drop the 8-byte header so that a
  SingleRecord request is the record itself, as it is for TFRecord (our choice; whether
  SageMaker keeps the header is unconfirmed).

Framing is checked as it is read: a wrong magic number, a flag other than 0-3, parts out of
order, or a file ending inside a frame fail the object with the frame's byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from batchtransform.data.framing import ByteReader, read_records, record_too_large
from batchtransform.errors import DataError

__all__ = ["MAGIC", "split_frames", "split_payloads"]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEADER = struct.Struct("<II")
_LENGTH_MASK = (1 << 29) - 1
_WHOLE, _START, _MIDDLE, _END = 0, 1, 2, 3


def split_frames(chunks: Iterable[bytes], max_record_bytes: int | None) -> Iterator[bytes]:
    """Yield each logical record with its framing, as MultiRecord sends it."""
    return read_records(chunks, max_record_bytes, True, _read_record)


def split_payloads(chunks: Iterable[bytes], max_record_bytes: int | None) -> Iterator[bytes]:
    """Yield each logical record without framing, as SingleRecord sends it."""
    return read_records(chunks, max_record_bytes, False, _read_record)


def _read_record(reader: ByteReader, number: int, limit: int | None, framed: bool) -> bytes:
    return _RecordReader(reader, number, limit, framed).read()


class _RecordReader:
    """Reads the frames of one logical record, checking flags, sizes and the limit."""

    def __init__(self, reader: ByteReader, number: int, limit: int | None, framed: bool) -> None:
        self.reader, self.number, self.limit, self.framed = reader, number, limit, framed
        self.start = reader.offset
        self.pieces: list[bytes] = []  # frames (framed) or data parts (bare)
        self.size = 0  # of the record as it will be sent

    def read(self) -> bytes:
        cflag = self._frame(first=True)
        while cflag in (_START, _MIDDLE):
            cflag = self._frame(first=False)
        return b"".join(self.pieces) if self.framed else _MAGIC_BYTES.join(self.pieces)

    def _frame(self, first: bool) -> int:
        """Read one frame; return its cflag."""
        offset = self.reader.offset
        header = self.reader.read(_HEADER.size)
        if len(header) < _HEADER.size:
            raise self._truncated(offset, header)
        magic: int
        lrec: int
        magic, lrec = _HEADER.unpack(header)
        if magic != MAGIC:
            raise self._error(
                f"expected the RecordIO magic number 0x{MAGIC:08X}, found 0x{magic:08X}", offset
            )
        cflag, length = lrec >> 29, lrec & _LENGTH_MASK
        self._check_flag(cflag, first, offset)
        padded = (length + 3) & ~3
        self._grow(_HEADER.size + padded if self.framed else length + (0 if first else 4))
        body = self.reader.read(padded)
        if len(body) < padded:
            raise self._error(
                f"the frame announces {length} data bytes ({padded} with padding) but the "
                f"file ends {len(body)} bytes after its header",
                offset,
            )
        self.pieces.extend((header, body) if self.framed else (body[:length],))
        return cflag

    def _check_flag(self, cflag: int, first: bool, offset: int) -> None:
        if cflag > _END:
            raise self._error(f"cflag {cflag} is not a RecordIO flag (0 to 3)", offset)
        if first and cflag in (_MIDDLE, _END):
            raise self._error(
                f"a continuation part (cflag {cflag}) without a start part (cflag 1)", offset
            )
        if not first and cflag in (_WHOLE, _START):
            raise self._error(
                f"a multi-part record is not ended: cflag {cflag} where a middle (2) or "
                "end (3) part belongs",
                offset,
            )

    def _grow(self, size: int) -> None:
        self.size += size
        if self.limit is not None and self.size > self.limit:
            raise record_too_large(self.size, self.limit, self.number, self.start)

    def _truncated(self, offset: int, header: bytes) -> DataError:
        if not header:  # at a frame boundary, so only after a start or middle part
            return self._error("the file ends inside a multi-part record: no end part (cflag 3)")
        return self._error(
            f"the file ends inside a frame header ({len(header)} of {_HEADER.size} bytes)", offset
        )

    def _error(self, message: str, offset: int | None = None) -> DataError:
        where = self.start if offset is None else offset
        return DataError(f"invalid RecordIO: {message}", record=self.number, offset=where)
