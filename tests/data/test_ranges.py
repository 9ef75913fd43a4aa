"""Ranges read as whole records: every record read once, whatever the range size."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from framings import RECORDIO_MAGIC, recordio_frame, tfrecord_frame

from batchtransform.data import ranges
from batchtransform.data.split import split_records
from batchtransform.objects import ObjectInfo
from batchtransform.plan import plan_items, range_size

LINES = b"a,1\r\nbb,2\n\n\r\nccc,3\n   \nd,4\n" + b"e" * 40 + b"\nlast without newline"


def _recordio() -> bytes:
    rng = random.Random(7)
    frames = []
    for n in range(40):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30)))
        if n % 7 == 3:  # a record the writer split where the magic number fell aligned
            frames += [
                recordio_frame(b"head" + data, 1),
                recordio_frame(b"mid.", 2),
                recordio_frame(data + b"tail", 3),
            ]
        else:
            frames.append(recordio_frame(data + RECORDIO_MAGIC[:3]))  # magic-like bytes
    return b"".join(frames)


def _tfrecord() -> bytes:
    rng = random.Random(11)
    records = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))) for _ in range(40)]
    records[5] = tfrecord_frame(b"a record that holds a frame")  # framing-like data
    return b"".join(tfrecord_frame(record) for record in records)


SAMPLES = {"Line": LINES, "RecordIO": _recordio(), "TFRecord": _tfrecord()}


def _records_by_ranges(path: Path, split_type: str, step: int) -> list[bytes]:
    size = path.stat().st_size
    found: list[bytes] = []
    for start in range(0, size, step):
        first, last = ranges.aligned_span(
            str(path), size, start, min(start + step, size), split_type
        )
        found += split_records(ranges.read_range(str(path), first, last), split_type)
    return found


@pytest.mark.parametrize("split_type", sorted(SAMPLES))
def test_every_range_size_reads_every_record_once(tmp_path: Path, split_type: str) -> None:
    path = tmp_path / "data"
    path.write_bytes(SAMPLES[split_type])
    whole = list(split_records([SAMPLES[split_type]], split_type))
    assert len(whole) > 5
    for step in [*range(1, 40), 97, 256, len(SAMPLES[split_type])]:
        assert _records_by_ranges(path, split_type, step) == whole, step


@pytest.mark.parametrize("split_type", sorted(SAMPLES))
def test_records_before_a_boundary(tmp_path: Path, split_type: str) -> None:
    path = tmp_path / "data"
    data = SAMPLES[split_type]
    path.write_bytes(data)
    whole = list(split_records([data], split_type))
    for offset in (0, 13, len(data) // 2, len(data) - 1):
        edge = ranges.boundary(str(path), len(data), offset, split_type)
        before = list(split_records([data[:edge]], split_type))
        assert ranges.records_before(str(path), edge, split_type) == len(before)
        assert before == whole[: len(before)]


def test_a_range_inside_one_long_line_reads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"x" * 100 + b"\ny\n")
    assert ranges.aligned_span(str(path), 103, 10, 20, "Line") == (101, 101)
    assert list(ranges.read_range(str(path), 101, 101)) == []


def test_plan_splits_large_objects_into_ranges() -> None:
    objects = [
        ObjectInfo("/in/a.csv", "/in/a.csv", "a.csv", 250),
        ObjectInfo("/in/b.csv", "/in/b.csv", "b.csv", 100),
    ]
    items = plan_items(objects, "/out", range_bytes=100)
    assert [(i.index, i.start, i.end, i.part, i.parts) for i in items] == [
        (0, 0, 84, 1, 3),  # three ranges of at most 100 bytes, of even sizes
        (1, 84, 168, 2, 3),
        (2, 168, 250, 3, 3),
        (3, None, None, 1, 1),
    ]
    assert {i.output_url for i in items[:3]} == {"/out/a.csv.out"}
    assert [i.key for i in items] == ["a.csv#0-84", "a.csv#84-168", "a.csv#168-250", "b.csv"]
    assert [i.small for i in items] == [False, False, False, True]


def test_range_size_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATCHTRANSFORM_RANGE_SIZE_MB", raising=False)
    assert range_size({}) == 64 * 2**20
    assert range_size({"BATCHTRANSFORM_RANGE_SIZE_MB": "0"}) == 0
    monkeypatch.setenv("BATCHTRANSFORM_RANGE_SIZE_MB", "2")
    assert range_size({}) == 2 * 2**20
    assert range_size({"BATCHTRANSFORM_RANGE_SIZE_MB": "0.5"}) == 2**19
    with pytest.raises(ValueError, match="BATCHTRANSFORM_RANGE_SIZE_MB='x'"):
        range_size({"BATCHTRANSFORM_RANGE_SIZE_MB": "x"})
