"""Read a byte range of an object as whole records: its ends aligned at read time.

A range planned as ``[start, end)`` owns the records that *begin* in it. Both ends move
forward to the first record boundary at or after them (``boundary``), so the range that
ends at an offset and the one that starts there find the same boundary and between them
every record is read exactly once. What a range reads, ``[boundary(start),
boundary(end))``, is a run of whole records, which the record pipeline splits as it
would a whole object.

How a boundary is found, per SplitType:

* ``Line``: just after the first ``\\n`` at or after ``offset - 1`` (a line that starts
  exactly at the offset belongs to the range that starts there).
* ``RecordIO``: the first 4-byte-aligned magic number at or after the offset whose
  frame starts a record (cflag 0 or 1). Frames are padded to 4 bytes and a writer splits
  a record wherever the magic number falls aligned in its data, so an aligned magic
  number is always a frame header; the middle and end parts (cflag 2, 3) of a record
  that crosses the offset are skipped, as they belong to the range where it starts.
* ``TFRecord``: the first offset whose 12 bytes are a length with a valid masked CRC-32C,
  whose data's checksum is valid too, and which is followed by the end of the object or
  by another valid header. Data that happens to contain a whole valid TFRecord stream
  could mislead this search; nothing short of reading from the start could tell.

``records_before`` counts the records before an aligned offset, so that an error in a
range can name the record's number within the whole object. It reads the object up to
there, so it is called only when an error needs it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from batchtransform import objects
from batchtransform.data import recordio, tfrecord
from batchtransform.data.split import split_blocks

__all__ = ["aligned_span", "boundary", "read_range", "records_before"]

_WINDOW = 64 * 1024  # bytes fetched at a time while looking for a boundary
_MAGIC = struct.pack("<I", recordio.MAGIC)
_TF_LENGTH = struct.Struct("<Q")
_TF_CRC = struct.Struct("<I")
_TF_HEADER = 12
_TF_FOOTER = 4


def aligned_span(url: str, size: int, start: int, end: int, split_type: str) -> tuple[int, int]:
    """The bytes ``[first, last)`` that the range ``[start, end)`` owns: whole records."""
    return boundary(url, size, start, split_type), boundary(url, size, end, split_type)


def read_range(url: str, first: int, last: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The aligned span's bytes, streamed (nothing at all for an empty span)."""
    if last <= first:
        return iter(())
    return objects.iter_chunks(url, chunk_size, first, last)


def boundary(url: str, size: int, offset: int, split_type: str) -> int:
    """The first record boundary at or after ``offset`` (``size`` when none follows)."""
    if offset <= 0:
        return 0
    if offset >= size:
        return size
    if split_type == "Line":
        return _line_boundary(url, size, offset)
    if split_type == "RecordIO":
        return _recordio_boundary(url, size, offset)
    if split_type == "TFRecord":
        return _tfrecord_boundary(url, size, offset)
    raise ValueError(f"SplitType {split_type!r} has no record boundaries to find")


def records_before(url: str, offset: int, split_type: str) -> int:
    """How many records the object has before ``offset``, a record boundary."""
    if offset <= 0:
        return 0
    chunks = objects.iter_chunks(url, 1 << 20, 0, offset)
    return sum(len(block) for block in split_blocks(chunks, split_type, None))


def _windows(url: str, size: int, offset: int, overlap: int) -> Iterator[tuple[int, bytes]]:
    """``(position, bytes)`` windows from ``offset`` to the end, each repeating the last
    ``overlap`` bytes of the one before, so a pattern across two windows is seen whole."""
    position = offset
    while position < size:
        data = objects.read_window(url, position, min(position + _WINDOW, size))
        if not data:
            return
        yield position, data
        if position + len(data) >= size:
            return
        position += max(1, len(data) - overlap)


def _line_boundary(url: str, size: int, offset: int) -> int:
    for position, data in _windows(url, size, offset - 1, 0):
        found = data.find(b"\n")
        if found >= 0:
            return position + found + 1
    return size


def _recordio_boundary(url: str, size: int, offset: int) -> int:
    aligned = -(-offset // 4) * 4
    for position, data in _windows(url, size, aligned, 8):
        at = 0
        while (at := data.find(_MAGIC, at)) >= 0:
            if (position + at) % 4 == 0 and at + 8 <= len(data):
                (lrec,) = struct.unpack_from("<I", data, at + 4)
                if lrec >> 29 in (0, 1):  # a whole record or the start of one
                    return position + at
            elif at + 8 > len(data) and position + len(data) < size:
                break  # its flag is in the next window, which repeats these bytes
            at += 1
    return size


def _tfrecord_boundary(url: str, size: int, offset: int) -> int:
    for position, data in _windows(url, size, offset, _TF_HEADER - 1):
        for at in range(len(data) - _TF_HEADER + 1):
            if _tf_header_ok(data, at) and _tf_record_ok(url, size, position + at):
                return position + at
        if position + len(data) >= size:
            break
    return size


def _tf_header_ok(data: bytes, at: int) -> bool:
    length_bytes = data[at : at + _TF_LENGTH.size]
    (crc,) = _TF_CRC.unpack_from(data, at + _TF_LENGTH.size)
    return bool(tfrecord.masked_crc32c(length_bytes) == crc)


def _tf_record_ok(url: str, size: int, start: int, follow: bool = True) -> bool:
    """Whether a whole valid record starts at ``start``: its data's checksum too, and
    (``follow``) the object ends right after it or another valid record starts there."""
    header = objects.read_window(url, start, start + _TF_HEADER)
    if len(header) < _TF_HEADER or not _tf_header_ok(header, 0):
        return False
    (length,) = _TF_LENGTH.unpack_from(header)
    end = start + _TF_HEADER + length + _TF_FOOTER
    if end > size:
        return False
    body = objects.read_window(url, start + _TF_HEADER, end)
    if tfrecord.masked_crc32c(body[:length]) != _TF_CRC.unpack_from(body, length)[0]:
        return False
    return not follow or end == size or _tf_record_ok(url, size, end, follow=False)
