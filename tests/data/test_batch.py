"""batch_records: SingleRecord and MultiRecord packing against the payload limit."""

from __future__ import annotations

import random

import pytest

from batchtransform.data.batch import Batch, batch_blocks, batch_records
from batchtransform.errors import DataError

RECORDS = [b"aa", b"bbb", b"c", b"dddd"]


@pytest.mark.parametrize(
    ("records", "strategy", "limit", "separator", "expected"),
    [
        pytest.param(
            RECORDS,
            "MultiRecord",
            6,
            b"\n",
            [Batch(b"aa\nbbb", 1, 2), Batch(b"c\ndddd", 3, 2)],
            id="multi-greedy-exact-fit",
        ),
        pytest.param(
            RECORDS,
            "MultiRecord",
            5,
            b"\n",
            [Batch(b"aa", 1, 1), Batch(b"bbb\nc", 2, 2), Batch(b"dddd", 4, 1)],
            id="multi-separator-counts",
        ),
        pytest.param(
            RECORDS,
            "MultiRecord",
            5,
            b"",
            [Batch(b"aabbb", 1, 2), Batch(b"cdddd", 3, 2)],
            id="multi-no-separator",
        ),
        pytest.param(
            [b"ab", b"cd"],
            "MultiRecord",
            4,
            b"\n",
            [Batch(b"ab", 1, 1), Batch(b"cd", 2, 1)],
            id="multi-one-byte-over",
        ),
        pytest.param(
            RECORDS,
            "MultiRecord",
            0,
            b"\n",
            [Batch(b"aa\nbbb\nc\ndddd", 1, 4)],
            id="multi-unlimited-is-one-batch",
        ),
        pytest.param(
            [b"x" * 4], "MultiRecord", 4, b"\n", [Batch(b"xxxx", 1, 1)], id="multi-exact-single"
        ),
        pytest.param(
            [b"", b"", b"a"],
            "MultiRecord",
            2,
            b"\n",
            [Batch(b"\n", 1, 2), Batch(b"a", 3, 1)],
            id="multi-empty-records",
        ),
        pytest.param(
            RECORDS,
            "SingleRecord",
            4,
            b"\n",
            [Batch(b"aa", 1, 1), Batch(b"bbb", 2, 1), Batch(b"c", 3, 1), Batch(b"dddd", 4, 1)],
            id="single",
        ),
        pytest.param(
            [b"x" * 100], "SingleRecord", 0, b"\n", [Batch(b"x" * 100, 1, 1)], id="single-unlimited"
        ),
        pytest.param([b""], "SingleRecord", 4, b"\n", [Batch(b"", 1, 1)], id="single-empty-record"),
        pytest.param([], "MultiRecord", 4, b"\n", [], id="multi-no-records"),
        pytest.param([], "MultiRecord", 0, b"\n", [], id="multi-unlimited-no-records"),
        pytest.param([], "SingleRecord", 4, b"\n", [], id="single-no-records"),
    ],
)
def test_batches(
    records: list[bytes], strategy: str, limit: int, separator: bytes, expected: list[Batch]
):
    assert list(batch_records(iter(records), strategy, limit, separator)) == expected


@pytest.mark.parametrize(
    ("records", "strategy", "record"),
    [
        pytest.param([b"abcde", b"a"], "MultiRecord", 1, id="multi-first-record"),
        pytest.param([b"a", b"b", b"abcde"], "MultiRecord", 3, id="multi-later-record"),
        pytest.param([b"abcde"], "SingleRecord", 1, id="single-first-record"),
        pytest.param([b"a", b"abcde", b"b"], "SingleRecord", 2, id="single-later-record"),
    ],
)
def test_record_over_the_limit_fails(records: list[bytes], strategy: str, record: int):
    with pytest.raises(DataError, match="record is 5 bytes, larger than") as caught:
        list(batch_records(records, strategy, 4, b"\n"))
    assert caught.value.record == record


def test_batches_before_an_oversized_record_are_still_yielded():
    batches = batch_records([b"a", b"b", b"toolong"], "SingleRecord", 4, b"\n")
    assert next(batches) == Batch(b"a", 1, 1)
    assert next(batches) == Batch(b"b", 2, 1)
    with pytest.raises(DataError):
        next(batches)


def test_limit_named_in_max_payload_in_mb():
    with pytest.raises(DataError, match=r"MaxPayloadInMB=1 \(1048576 bytes\)"):
        list(batch_records([b"x" * (1024 * 1024 + 1)], "MultiRecord", 1024 * 1024, b"\n"))


@pytest.mark.parametrize(
    ("strategy", "limit", "message"),
    [
        pytest.param("MULTI_RECORD", 4, "unknown BatchStrategy", id="env-spelling"),
        pytest.param("multirecord", 4, "unknown BatchStrategy", id="lower-case"),
        pytest.param("MultiRecord", -1, "max_payload_bytes", id="negative-limit"),
    ],
)
def test_bad_settings_fail_when_called(strategy: str, limit: int, message: str):
    with pytest.raises(ValueError, match=message):
        batch_records([], strategy, limit, b"\n")


def _reference_greedy(records: list[bytes], limit: int, separator: bytes) -> list[tuple[int, int]]:
    """(first record, count) of each batch, by the plain per-record greedy rule."""
    batches: list[tuple[int, int]] = []
    first, count, size = 1, 0, 0
    for number, record in enumerate(records, start=1):
        grown = size + len(separator) + len(record) if count else len(record)
        if count and limit and grown > limit:
            batches.append((first, count))
            first, count, grown = number, 0, len(record)
        count += 1
        size = grown
    if count:
        batches.append((first, count))
    return batches


@pytest.mark.parametrize("seed", range(40))
def test_packing_a_list_at_a_time_matches_the_per_record_rule(seed: int) -> None:
    rng = random.Random(seed)
    limit = rng.choice([0, 5, 16, 64, 200])
    separator = rng.choice([b"\n", b""])
    longest = max(1, limit or 30)
    records = [b"x" * rng.randint(0, longest) for _ in range(rng.randint(0, 300))]
    cuts = sorted(rng.sample(range(len(records) + 1), k=min(len(records) + 1, rng.randint(1, 8))))
    blocks = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]

    batches = list(batch_blocks(blocks, "MultiRecord", limit, separator))

    assert [(b.first_record, b.count) for b in batches] == _reference_greedy(
        records, limit, separator
    )
    assert b"".join(
        separator.join(records[b.first_record - 1 : b.first_record - 1 + b.count]) for b in batches
    ) == b"".join(b.payload for b in batches)
    assert all(not limit or len(b.payload) <= limit for b in batches)
