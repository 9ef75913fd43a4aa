"""Line batches cut from the stream are exactly split_records + batch_records' batches."""

from __future__ import annotations

import random

import pytest

from batchtransform.data.batch import batch_records
from batchtransform.data.lines import line_batches
from batchtransform.data.split import split_records
from batchtransform.errors import DataError

LINE_PIECES = [b"a", b"bb", b"1,2,3", b"x" * 40, b"", b"\r", b"tail\r", b" "]


def random_stream(rng: random.Random) -> bytes:
    lines = [
        b"".join(rng.choices(LINE_PIECES, k=rng.randint(0, 3))) for _ in range(rng.randint(0, 60))
    ]
    data = b"\n".join(lines)
    return data + (b"\n" if rng.random() < 0.5 else b"")


def chunked(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(len(data) + 1), k=min(len(data) + 1, rng.randint(1, 12))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True) if b > a]


def expected(
    data: bytes, limit: int
) -> list[tuple[bytes, int, int]] | tuple[int | None, int | None]:
    try:
        records = split_records([data], "Line", limit)
        return [
            (b.payload, b.first_record, b.count)
            for b in batch_records(records, "MultiRecord", limit, b"\n")
        ]
    except DataError as error:
        return (error.record, error.offset)


def actual(
    chunks: list[bytes], limit: int
) -> list[tuple[bytes, int, int]] | tuple[int | None, int | None]:
    try:
        return [(b.payload, b.first_record, b.count) for b in line_batches(chunks, limit)]
    except DataError as error:
        return (error.record, error.offset)


@pytest.mark.parametrize("seed", range(300))
def test_same_batches_as_the_record_path(seed: int) -> None:
    rng = random.Random(seed)
    data = random_stream(rng)
    limit = rng.choice([1, 7, 20, 45, 64, 500, 10_000])
    want, got = expected(data, limit), actual(chunked(data, rng), limit)
    if isinstance(want, tuple) and isinstance(got, tuple):
        assert got[0] == want[0], "the same record number is reported"
        assert got[1] in (want[1], None), "the offset, where the bytes were not normalised"
    else:
        assert got == want


CASES = [
    ("plain", b"a\nb\nc\n", 3, [(b"a\nb", 1, 2), (b"c", 3, 1)]),
    ("crlf and blank lines", b"a\r\n\r\n\nb\r\nc", 100, [(b"a\nb\nc", 1, 3)]),
    ("exact fit", b"aa\nbb\n", 5, [(b"aa\nbb", 1, 2)]),
    ("one over", b"aa\nbb\n", 4, [(b"aa", 1, 1), (b"bb", 2, 1)]),
    ("final line keeps its \\r", b"a\nb\r", 100, [(b"a\nb\r", 1, 2)]),
    ("empty stream", b"", 10, []),
    ("only blank lines", b"\n\r\n\n", 10, []),
    ("blank line at an even offset", b"ab\n\ncd\n", 100, [(b"ab\ncd", 1, 2)]),
    ("blank line at an odd offset", b"a\n\nbc\n", 100, [(b"a\nbc", 1, 2)]),
    ("blank first line", b"\nab\n", 100, [(b"ab", 1, 1)]),
]


@pytest.mark.parametrize(
    ("data", "limit", "batches"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_cases(data: bytes, limit: int, batches: list[tuple[bytes, int, int]]) -> None:
    for size in (1, 2, len(data) or 1):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert [
            (b.payload, b.first_record, b.count) for b in line_batches(chunks, limit)
        ] == batches


def test_an_oversized_line_names_its_number_and_offset() -> None:
    with pytest.raises(DataError) as caught:
        list(line_batches([b"ok\nfine\n", b"x" * 50, b"\nafter\n"], 10))
    assert (caught.value.record, caught.value.offset) == (3, 8)


def test_a_line_that_never_ends_fails_without_reading_on() -> None:
    def endless() -> object:
        yield b"first\n"
        while True:
            yield b"y" * 64

    with pytest.raises(DataError, match="without a newline") as caught:
        list(line_batches(endless(), 100))  # type: ignore[arg-type]
    assert caught.value.record == 2


def test_a_positive_limit_is_required() -> None:
    with pytest.raises(ValueError):
        line_batches([b"a\n"], 0)
