"""RecordIO and TFRecord files written from the formats' definitions, independently of the
project's own code, so the tests check our readers against the formats themselves."""

from __future__ import annotations

import struct

RECORDIO_MAGIC = struct.pack("<I", 0xCED7230A)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bit by bit: slow, and obviously the definition."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(data: bytes) -> bytes:
    """length, masked CRC of the length, data, masked CRC of the data."""
    length = struct.pack("<Q", len(data))
    return (
        length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))
    )


def recordio_frame(data: bytes, cflag: int = 0, magic: bytes = RECORDIO_MAGIC) -> bytes:
    """dmlc-core framing: magic, cflag and length, data, zero padding to 4 bytes."""
    header = magic + struct.pack("<I", cflag << 29 | len(data))
    return header + data + b"\0" * (-len(data) % 4)
