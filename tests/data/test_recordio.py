"""SplitType RecordIO against files written here from the dmlc-core format definition.

The writer below follows dmlc-core's RecordIOWriter::WriteRecord, not the project's code:
magic 0xCED7230A, then lrec = cflag << 29 | length, the data, zero padding to 4 bytes; a
record whose data holds the magic number at a 4-byte-aligned position is cut there into
parts flagged 1 (start), 2 (middle) and 3 (end), the magic itself left out.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator

import pytest

from batchtransform.data.batch import Batch
from batchtransform.data.pipeline import PipelineSettings, transform_stream
from batchtransform.data.split import split_records
from batchtransform.errors import DataError

MAGIC = struct.pack("<I", 0xCED7230A)


def frame(data: bytes, cflag: int = 0, magic: bytes = MAGIC) -> bytes:
    """One frame: header, data, zero padding to a multiple of 4."""
    padding = b"\0" * (-len(data) % 4)
    return magic + struct.pack("<I", cflag << 29 | len(data)) + data + padding


def write_record(data: bytes) -> bytes:
    """dmlc's WriteRecord: split at each aligned magic number, dropping it."""
    frames, start = [], 0
    for i in range(0, len(data) - len(data) % 4, 4):
        if data[i : i + 4] == MAGIC:
            frames.append(frame(data[start:i], 1 if start == 0 else 2))
            start = i + 4
    frames.append(frame(data[start:], 3 if frames else 0))
    return b"".join(frames)


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    for size in (1, 2, 3, 5, 7, 8, 13):
        yield [data[start : start + size] for start in range(0, len(data), size)]


RECORDS = [b"", b"a", b"abc", b"abcd", b"abcde", bytes(range(256)) * 3]


@pytest.mark.parametrize("chunks", list(chunkings(b"".join(map(write_record, RECORDS)))))
def test_single_records_both_forms(chunks: list[bytes]):
    assert list(split_records(chunks, "RecordIO", framed=False)) == RECORDS
    assert list(split_records(chunks, "RecordIO")) == [write_record(r) for r in RECORDS]


def test_padding_is_part_of_the_frame_not_of_the_record():
    file = frame(b"12345") + frame(b"6")
    assert file == MAGIC + b"\x05\0\0\0" + b"12345\0\0\0" + MAGIC + b"\x01\0\0\0" + b"6\0\0\0"
    assert list(split_records([file], "RecordIO", framed=False)) == [b"12345", b"6"]
    assert list(split_records([file], "RecordIO")) == [file[:16], file[16:]]


MULTI_PART = [
    pytest.param(MAGIC + b"tail", id="magic-first"),
    pytest.param(b"head" + MAGIC, id="magic-last"),
    pytest.param(b"ab" + MAGIC + b"cd", id="unaligned-magic-not-split"),
    pytest.param(b"abcd" + MAGIC + b"efgh" + MAGIC + b"ij", id="two-cuts-start-middle-end"),
    pytest.param(MAGIC + MAGIC, id="only-magic"),
]


@pytest.mark.parametrize("record", MULTI_PART)
def test_multi_part_records_are_rejoined_with_the_magic_number(record: bytes):
    file = write_record(b"first") + write_record(record) + write_record(b"last")
    for chunks in chunkings(file):
        assert list(split_records(chunks, "RecordIO", framed=False)) == [b"first", record, b"last"]
        framed = list(split_records(chunks, "RecordIO"))
        assert framed == [write_record(b"first"), write_record(record), write_record(b"last")]


def test_hand_built_cflags_one_two_three():
    file = frame(b"ab", 1) + frame(b"", 2) + frame(b"cdef", 2) + frame(b"g", 3) + frame(b"h")
    assert list(split_records([file], "RecordIO", framed=False)) == [
        b"ab" + MAGIC + MAGIC + b"cdef" + MAGIC + b"g",
        b"h",
    ]
    assert b"".join(split_records([file], "RecordIO")) == file


def test_limits_apply_to_the_form_sent():
    file = write_record(b"x" * 10)  # 8 header + 12 padded
    assert list(split_records([file], "RecordIO", 10, framed=False)) == [b"x" * 10]
    with pytest.raises(
        DataError, match="record is 11 bytes as sent, larger than the payload limit of 10 bytes"
    ):
        list(split_records([write_record(b"x" * 11)], "RecordIO", 10, framed=False))
    assert list(split_records([file], "RecordIO", 20)) == [file]
    with pytest.raises(DataError) as caught:
        list(split_records([write_record(b"ok") + file], "RecordIO", 19))
    assert (caught.value.record, caught.value.offset) == (2, 12)


CORRUPT = [
    pytest.param(frame(b"good") + b"\x0b\x23\xd7\xce" + b"\0" * 8, 2, 12, "expected the RecordIO magic number 0xCED7230A, found 0xCED7230B", id="bad-magic"),
    pytest.param(frame(b"good") + MAGIC + b"\x04\0", 2, 12, "ends inside a frame header (6 of 8 bytes)", id="truncated-header"),
    pytest.param(frame(b"good") + frame(b"abcdef")[:-3], 2, 12, "announces 6 data bytes (8 with padding) but the file ends 5 bytes after", id="truncated-data"),
    pytest.param(frame(b"good") + frame(b"abcde")[:-1], 2, 12, "announces 5 data bytes (8 with padding)", id="truncated-padding"),
    pytest.param(frame(b"a", 4), 1, 0, "cflag 4 is not a RecordIO flag (0 to 3)", id="unknown-cflag"),
    pytest.param(frame(b"a") + frame(b"b", 2), 2, 12, "a continuation part (cflag 2) without a start part", id="middle-first"),
    pytest.param(frame(b"a", 3), 1, 0, "a continuation part (cflag 3) without a start part", id="end-first"),
    pytest.param(frame(b"a", 1) + frame(b"b"), 1, 12, "a multi-part record is not ended: cflag 0", id="whole-inside-multi"),
    pytest.param(frame(b"a", 1) + frame(b"b", 1), 1, 12, "cflag 1 where a middle (2) or end (3) part belongs", id="start-inside-multi"),
    pytest.param(frame(b"a", 1) + frame(b"b", 2), 1, 0, "the file ends inside a multi-part record", id="never-ended"),
    pytest.param(b"\0", 1, 0, "ends inside a frame header (1 of 8 bytes)", id="one-stray-byte"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "record", "offset", "message"), CORRUPT)
@pytest.mark.parametrize("framed", [True, False])
def test_corrupt_framing_names_record_and_byte_offset(
    data: bytes, record: int, offset: int, message: str, framed: bool
):
    for chunks in chunkings(data):
        with pytest.raises(DataError) as caught:
            list(split_records(chunks, "RecordIO", framed=framed))
        assert (caught.value.record, caught.value.offset) == (record, offset)
        assert message in str(caught.value)
        assert f"byte offset {offset}" in str(caught.value)


def test_empty_file_has_no_records():
    assert list(split_records([], "RecordIO")) == []
    assert list(split_records([b""], "RecordIO", framed=False)) == []


@pytest.mark.parametrize(
    ("strategy", "expected_requests"),
    [("SingleRecord", [b"one", b"two" + MAGIC + b"!", b"three"]), ("MultiRecord", None)],
)
def test_gzip_recordio_through_the_pipeline(strategy: str, expected_requests: list[bytes] | None):
    records = [b"one", b"two" + MAGIC + b"!", b"three"]
    file = b"".join(map(write_record, records))
    compressed = gzip.compress(file[:20]) + gzip.compress(file[20:])
    sent: list[bytes] = []

    def echo(batch: Batch) -> bytes:
        sent.append(batch.payload)
        return batch.payload

    settings = PipelineSettings(compression="Gzip", split_type="RecordIO", batch_strategy=strategy)
    output = b"".join(transform_stream([compressed], settings, echo))
    assert sent == (expected_requests or [file])
    assert output == b"".join(expected_requests or [file])
