"""split_records: SplitType None and Line, across every chunking, with payload limits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest

from batchtransform.data.split import record_separator, split_records
from batchtransform.errors import DataError

MIB = 1024 * 1024


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    """Every fixed chunk size 1..n, and every split into two pieces."""
    yield [data]
    for size in range(1, len(data) + 1):
        yield [data[start : start + size] for start in range(0, len(data), size)]
    for cut in range(1, len(data)):
        yield [data[:cut], data[cut:]]


def limited(chunks: Iterable[bytes], most: int) -> Iterator[bytes]:
    """Hand out chunks, failing the test if more than ``most`` are asked for."""
    for taken, chunk in enumerate(chunks, start=1):
        if taken > most:
            raise AssertionError(f"read chunk {taken}, past the expected stop")
        yield chunk


LINE_CASES = [
    pytest.param(b"a,1\nb,2\nc,3\n", [b"a,1", b"b,2", b"c,3"], id="lf"),
    pytest.param(b"a,1\r\nb,2\r\nc,3\r\n", [b"a,1", b"b,2", b"c,3"], id="crlf"),
    pytest.param(b"a\nb", [b"a", b"b"], id="no-final-newline"),
    pytest.param(b"a\r\nb", [b"a", b"b"], id="crlf-no-final-newline"),
    pytest.param(b"\n\na\n\n\r\nb\n\n", [b"a", b"b"], id="empty-lines-skipped"),
    pytest.param(b"a\rb\r\n", [b"a\rb"], id="inner-cr-kept"),
    pytest.param(b"a\r\r\n", [b"a\r"], id="only-one-cr-stripped"),
    pytest.param(b"a\nb\r", [b"a", b"b\r"], id="final-cr-without-newline-kept"),
    pytest.param(b" \n\t\r\n", [b" ", b"\t"], id="whitespace-lines-are-records"),
    pytest.param(b"", [], id="empty-object"),
    pytest.param(b"\n\r\n\n", [], id="only-newlines"),
    pytest.param(b"just one line", [b"just one line"], id="single-unterminated"),
    pytest.param("é,ü\n".encode(), ["é,ü".encode()], id="utf8-bytes-untouched"),
]


@pytest.mark.parametrize(("data", "expected"), LINE_CASES)
def test_line_records_do_not_depend_on_chunking(data: bytes, expected: list[bytes]):
    for chunks in chunkings(data):
        assert list(split_records(chunks, "Line")) == expected, chunks


def test_line_handles_empty_chunks():
    chunks = [b"", b"a\r", b"", b"\n", b"", b"b", b""]
    assert list(split_records(chunks, "Line")) == [b"a", b"b"]


def test_line_keeps_a_long_line_spanning_many_chunks():
    line = bytes(range(1, 256)).replace(b"\n", b"") * 400
    data = b"x\n" + line + b"\r\ny\n"
    for size in (7, 4096):
        chunks = [data[start : start + size] for start in range(0, len(data), size)]
        assert list(split_records(chunks, "Line")) == [b"x", line, b"y"]


@pytest.mark.parametrize(
    ("data", "limit", "record", "offset"),
    [
        pytest.param(b"ab\ncdefg\nh\n", 4, 2, 3, id="second-line"),
        pytest.param(b"abcdefg\n", 4, 1, 0, id="first-line"),
        pytest.param(b"\n\nab\n\r\n\ncdefg\n", 4, 2, 8, id="empty-lines-not-counted"),
        pytest.param(b"ab\ncdefg", 4, 2, 3, id="unterminated-last-line"),
        pytest.param(b"ab\ncdef\r", 4, 2, 3, id="trailing-cr-counts-at-end"),
        pytest.param(b"ab\r\n" * 3 + b"cdefg\r\n", 4, 4, 12, id="crlf"),
    ],
)
def test_line_longer_than_limit_names_record_and_offset(
    data: bytes, limit: int, record: int, offset: int
):
    for chunks in chunkings(data):
        with pytest.raises(DataError, match="larger than the payload limit of 4 bytes") as caught:
            list(split_records(chunks, "Line", limit))
        assert (caught.value.record, caught.value.offset) == (record, offset), chunks


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"abcd\nefgh\n", id="lf"),
        pytest.param(b"abcd\r\nefgh\r\n", id="crlf-terminator-not-counted"),
        pytest.param(b"abcd\nefgh", id="unterminated"),
    ],
)
def test_line_of_exactly_the_limit_fits(data: bytes):
    for chunks in chunkings(data):
        assert list(split_records(chunks, "Line", 4)) == [b"abcd", b"efgh"], chunks


def test_line_that_never_ends_is_not_buffered_without_bound():
    endless = (b"x" * 1000 for _ in iter(int, 1))
    with pytest.raises(DataError, match="already 6000 bytes without a newline") as caught:
        list(split_records(limited(endless, 6), "Line", 5 * 1000 + 500))
    assert (caught.value.record, caught.value.offset) == (1, 0)


def test_limit_error_message_speaks_in_max_payload_in_mb():
    with pytest.raises(DataError, match=r"MaxPayloadInMB=1 \(1048576 bytes\)"):
        list(split_records([b"x" * (MIB + 1)], "Line", MIB))


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param([b"a\nb", b"\r\nc"], b"a\nb\r\nc", id="bytes-untouched"),
        pytest.param([b"ab", b"", b"cd"], b"abcd", id="chunks-joined"),
        pytest.param([], b"", id="zero-byte-object-is-one-empty-record"),
        pytest.param([b""], b"", id="empty-chunk"),
    ],
)
def test_none_makes_the_whole_object_one_record(chunks: list[bytes], expected: bytes):
    assert list(split_records(chunks, "None")) == [expected]
    assert list(split_records(chunks, "None", 8)) == [expected]


def test_none_fails_as_soon_as_the_object_outgrows_the_limit():
    chunks = limited((b"xx" for _ in iter(int, 1)), 3)
    with pytest.raises(DataError, match="larger than the payload limit of 5 bytes") as caught:
        list(split_records(chunks, "None", 5))
    assert caught.value.record == 1


def test_none_exact_fit():
    assert list(split_records([b"ab", b"cde"], "None", 5)) == [b"abcde"]


@pytest.mark.parametrize(
    ("split_type", "separator"),
    [pytest.param("None", b"", id="none"), pytest.param("Line", b"\n", id="line")],
)
def test_record_separator(split_type: str, separator: bytes):
    assert record_separator(split_type) == separator


@pytest.mark.parametrize("split_type", ["line", "LINE", "Lines", ""])
def test_unknown_split_type(split_type: str):
    with pytest.raises(ValueError, match="unknown SplitType"):
        split_records([b"a\n"], split_type)
    with pytest.raises(ValueError, match="unknown SplitType"):
        record_separator(split_type)
