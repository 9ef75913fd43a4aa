"""SplitType TFRecord against files written here from TensorFlow's format definition.

The writer and its CRC-32C are independent of the project's code: a bitwise CRC-32C
(reflected polynomial 0x82F63B78) checked against the standard check value, masked as
TensorFlow's ``crc32c::Mask`` does.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator

import pytest
from framings import crc32c, masked_crc, tfrecord_frame

from batchtransform.data.batch import Batch
from batchtransform.data.pipeline import PipelineSettings, transform_stream
from batchtransform.data.split import split_records
from batchtransform.data.tfrecord import masked_crc32c
from batchtransform.errors import DataError


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    for size in (1, 3, 8, 12, 17):
        yield [data[start : start + size] for start in range(0, len(data), size)]


def test_the_reference_crc_is_crc32c():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert crc32c(b"") == 0


@pytest.mark.parametrize("data", [b"", b"a", b"123456789", bytes(range(256)) * 40])
def test_masked_crc_matches_the_reference(data: bytes):
    assert masked_crc32c(data) == masked_crc(data)


RECORDS = [b"", b"x", b"\x0a\x05hello", bytes(range(256)) * 5]


@pytest.mark.parametrize("chunks", list(chunkings(b"".join(map(tfrecord_frame, RECORDS)))))
def test_records_both_forms(chunks: list[bytes]):
    assert list(split_records(chunks, "TFRecord", framed=False)) == RECORDS
    assert list(split_records(chunks, "TFRecord")) == [tfrecord_frame(r) for r in RECORDS]


def test_limits_apply_to_the_form_sent():
    record = tfrecord_frame(b"y" * 10)  # 26 bytes framed
    assert list(split_records([record], "TFRecord", 10, framed=False)) == [b"y" * 10]
    assert list(split_records([record], "TFRecord", 26)) == [record]
    with pytest.raises(DataError) as caught:
        list(split_records([tfrecord_frame(b"") + record], "TFRecord", 25))
    assert (caught.value.record, caught.value.offset) == (2, 16)
    assert "record is 26 bytes as sent" in str(caught.value)


GOOD = tfrecord_frame(b"first")  # 21 bytes


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


CORRUPT = [
    pytest.param(GOOD + flip(tfrecord_frame(b"data"), 0), "the length's checksum does not match", id="bad-length"),
    pytest.param(GOOD + flip(tfrecord_frame(b"data"), 9), "the length's checksum does not match", id="bad-length-crc"),
    pytest.param(GOOD + flip(tfrecord_frame(b"data"), 13), "the data's checksum (at byte offset 37) does not match", id="bad-data"),
    pytest.param(GOOD + flip(tfrecord_frame(b"data"), 17), "the data's checksum (at byte offset 37) does not match", id="bad-data-crc"),
    pytest.param(GOOD + tfrecord_frame(b"data")[:7], "ends inside a record header (7 of 12 bytes)", id="truncated-header"),
    pytest.param(GOOD + tfrecord_frame(b"data")[:14], "announces 4 data bytes, but the file ends inside", id="truncated-data"),
    pytest.param(GOOD + tfrecord_frame(b"data")[:-1], "announces 4 data bytes, but the file ends inside", id="truncated-crc"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "message"), CORRUPT)
@pytest.mark.parametrize("framed", [True, False])
def test_corrupt_framing_names_record_and_byte_offset(data: bytes, message: str, framed: bool):
    for chunks in chunkings(data):
        records = split_records(chunks, "TFRecord", framed=framed)
        assert next(records) == (GOOD if framed else b"first")
        with pytest.raises(DataError) as caught:
            next(records)
        assert (caught.value.record, caught.value.offset) == (2, len(GOOD))
        assert message in str(caught.value)
        assert "byte offset 21" in str(caught.value)


def test_a_corrupt_length_never_allocates_what_it_claims():
    length = struct.pack("<Q", 2**60)
    bogus = length + struct.pack("<I", masked_crc(length) ^ 1) + b"tiny"
    with pytest.raises(DataError, match="length's checksum"):
        list(split_records([bogus], "TFRecord"))


@pytest.mark.parametrize("strategy", ["SingleRecord", "MultiRecord"])
def test_gzip_tfrecord_through_the_pipeline(strategy: str):
    file = b"".join(map(tfrecord_frame, RECORDS))
    sent: list[bytes] = []

    def echo(batch: Batch) -> bytes:
        sent.append(batch.payload)
        return batch.payload

    settings = PipelineSettings(compression="Gzip", split_type="TFRecord", batch_strategy=strategy)
    output = b"".join(transform_stream([gzip.compress(file)], settings, echo))
    assert sent == (RECORDS if strategy == "SingleRecord" else [file])
    assert output == b"".join(sent)
