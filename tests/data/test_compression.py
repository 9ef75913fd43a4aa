"""decompress: CompressionType None and Gzip, streamed, multi-member, and broken input."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest

from batchtransform.data.compression import decompress
from batchtransform.errors import DataError

TEXT = b"1,2,3\n4,5,6\n" * 50
MEMBER_A = gzip.compress(b"first member\n")
MEMBER_B = gzip.compress(b"second member\n")


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize(
    ("compressed", "expected"),
    [
        pytest.param(gzip.compress(TEXT), TEXT, id="single-member"),
        pytest.param(MEMBER_A + MEMBER_B, b"first member\nsecond member\n", id="two-members"),
        pytest.param(MEMBER_A + gzip.compress(b"") + MEMBER_B, None, id="empty-member-between"),
        pytest.param(MEMBER_A + b"\0" * 7, b"first member\n", id="zero-padding-after"),
        pytest.param(gzip.compress(b""), b"", id="empty-content"),
        pytest.param(b"", b"", id="zero-bytes"),
    ],
)
@pytest.mark.parametrize("chunk_size", [1, 3, 64, 1 << 20])
def test_gzip_decodes_every_member(compressed: bytes, expected: bytes | None, chunk_size: int):
    expected = gzip.decompress(compressed) if expected is None else expected
    assert b"".join(decompress(chunked(compressed, chunk_size), "Gzip")) == expected


def test_gzip_member_boundary_at_every_chunk_split():
    data = MEMBER_A + MEMBER_B
    for cut in range(1, len(data)):
        out = b"".join(decompress([data[:cut], data[cut:]], "Gzip"))
        assert out == b"first member\nsecond member\n", cut


def test_gzip_output_comes_in_bounded_pieces():
    plain = b"\0" * (5 * 1024 * 1024)
    pieces = list(decompress([gzip.compress(plain)], "Gzip"))
    assert b"".join(pieces) == plain
    assert len(pieces) > 1
    assert max(map(len, pieces)) <= 1024 * 1024


def test_none_passes_chunks_through():
    chunks = [b"ab", b"", b"c\x1f\x8b"]
    assert list(decompress(chunks, "None")) == chunks


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]


BROKEN = gzip.compress(TEXT)


@pytest.mark.parametrize(
    ("compressed", "offset"),
    [
        pytest.param(b"plain text, not gzip", 0, id="not-gzip"),
        pytest.param(_flip(BROKEN, len(BROKEN) - 6), 0, id="bad-crc"),
        pytest.param(BROKEN[:-3], len(BROKEN) - 3, id="truncated-trailer"),
        pytest.param(BROKEN[:20], 20, id="truncated-data"),
        pytest.param(MEMBER_A + b"garbage", len(MEMBER_A), id="garbage-after-member"),
    ],
)
def test_broken_gzip_raises_data_error(compressed: bytes, offset: int):
    with pytest.raises(DataError, match="not valid gzip") as caught:
        b"".join(decompress([compressed], "Gzip"))
    assert caught.value.offset == offset


@pytest.mark.parametrize("damaged_at", [12, 20, 30])
def test_corruption_is_reported_where_noticed(damaged_at: int):
    damaged = _flip(BROKEN, damaged_at)
    with pytest.raises(DataError) as caught:
        b"".join(decompress(chunked(damaged, 8), "Gzip"))
    assert caught.value.offset is not None
    # Not before the 8-byte chunk holding the damage: zlib cannot notice what it has not read.
    assert damaged_at // 8 * 8 <= caught.value.offset < len(damaged)


def test_unknown_compression_fails_before_reading():
    def never_read() -> Iterator[bytes]:
        raise AssertionError("read")
        yield b""

    with pytest.raises(ValueError, match="CompressionType 'Zip'"):
        decompress(never_read(), "Zip")
