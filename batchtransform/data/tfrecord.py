"""SplitType TFRecord: TensorFlow's record framing (reference §3.6).

Each record is ``uint64 length`` (little-endian), ``uint32 masked_crc32c(length bytes)``,
the data, and ``uint32 masked_crc32c(data)``, where ``masked(crc) = ((crc >> 15) |
(crc << 17)) + 0xA282EAD8`` modulo 2**32 over CRC-32C (Castagnoli). Both checksums are
verified, as TensorFlow's reader does, so a damaged file fails with the record's byte
offset instead of sending garbage to the model. CRC-32C comes from ``google-crc32c``, a
small C-backed wheel (hardware CRC instructions where present): a pure-Python table loop
would manage only a few MB/s, slower than the model for most jobs.

MultiRecord sends each record with its full framing (``split_frames``), SingleRecord the
bare data (``split_payloads``), as the API documents and AWS's examples confirm.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import google_crc32c

from batchtransform.data.framing import ByteReader, read_records, record_too_large
from batchtransform.errors import DataError

__all__ = ["masked_crc32c", "split_frames", "split_payloads"]

_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_HEADER_SIZE = _LENGTH.size + _CRC.size
_FRAMING_SIZE = _HEADER_SIZE + _CRC.size
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data``."""
    crc: int = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def split_frames(chunks: Iterable[bytes], max_record_bytes: int | None) -> Iterator[bytes]:
    """Yield each record with its length and checksums, as MultiRecord sends it."""
    return read_records(chunks, max_record_bytes, True, _read_record)


def split_payloads(chunks: Iterable[bytes], max_record_bytes: int | None) -> Iterator[bytes]:
    """Yield each record's data alone, as SingleRecord sends it."""
    return read_records(chunks, max_record_bytes, False, _read_record)


def _read_record(reader: ByteReader, number: int, limit: int | None, framed: bool) -> bytes:
    start = reader.offset
    header = reader.read(_HEADER_SIZE)
    if len(header) < _HEADER_SIZE:
        raise _error(
            f"the file ends inside a record header ({len(header)} of 12 bytes)", number, start
        )
    length_bytes = header[: _LENGTH.size]
    if masked_crc32c(length_bytes) != _CRC.unpack_from(header, _LENGTH.size)[0]:
        raise _error("the length's checksum does not match: the header is corrupt", number, start)
    (length,) = _LENGTH.unpack(length_bytes)
    size = length + _FRAMING_SIZE if framed else length
    if limit is not None and size > limit:
        raise record_too_large(size, limit, number, start)
    data = reader.read(length)
    footer = reader.read(_CRC.size)
    if len(data) < length or len(footer) < _CRC.size:
        raise _error(
            f"the header announces {length} data bytes, but the file ends inside the record",
            number,
            start,
        )
    if masked_crc32c(data) != _CRC.unpack(footer)[0]:
        raise _error(
            f"the data's checksum (at byte offset {start + _HEADER_SIZE + length}) does not "
            "match: the record is corrupt",
            number,
            start,
        )
    return b"".join((header, data, footer)) if framed else data


def _error(message: str, number: int, offset: int) -> DataError:
    return DataError(f"invalid TFRecord: {message}", record=number, offset=offset)
