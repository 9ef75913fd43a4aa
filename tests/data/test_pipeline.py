"""transform_stream end to end, with plain-function models that echo or upper-case."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from batchtransform.data.batch import Batch
from batchtransform.data.pipeline import PipelineSettings, PipelineStats, transform_stream
from batchtransform.errors import DataError, ModelError

CSV = b"a,1\r\nb,2\r\n\r\nc,3\r\nd,4"


def echo(batch: Batch) -> bytes:
    return batch.payload


def upper(batch: Batch) -> bytes:
    return batch.payload.upper()


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def run(data: bytes, settings: PipelineSettings, invoke=echo, chunk_size: int = 3) -> bytes:
    return b"".join(transform_stream(chunked(data, chunk_size), settings, invoke))


@pytest.mark.parametrize(
    ("data", "settings", "expected"),
    [
        pytest.param(CSV, PipelineSettings(), CSV.upper(), id="defaults-whole-object"),
        pytest.param(
            CSV,
            PipelineSettings(split_type="Line", assemble_with="Line"),
            b"A,1\nB,2\nC,3\nD,4\n",
            id="line-multirecord-one-batch",
        ),
        pytest.param(
            CSV,
            PipelineSettings(split_type="Line", batch_strategy="SingleRecord"),
            b"A,1B,2C,3D,4",
            id="line-single-assemble-none",
        ),
        pytest.param(
            CSV,
            PipelineSettings(split_type="Line", max_payload_bytes=7, assemble_with="Line"),
            b"A,1\nB,2\nC,3\nD,4\n",
            id="line-two-per-batch",
        ),
        pytest.param(
            gzip.compress(CSV) + gzip.compress(b"\ne,5\n"),
            PipelineSettings(
                compression="Gzip",
                split_type="Line",
                batch_strategy="SingleRecord",
                max_concurrent=3,
                assemble_with="Line",
            ),
            b"A,1\nB,2\nC,3\nD,4\nE,5\n",
            id="gzip-multi-member-concurrent",
        ),
        pytest.param(b"", PipelineSettings(), b"", id="empty-object-one-empty-response"),
        pytest.param(
            b"", PipelineSettings(assemble_with="Line"), b"\n", id="empty-object-line-marks-it"
        ),
        pytest.param(
            b"\n\n", PipelineSettings(split_type="Line"), b"", id="no-records-no-requests"
        ),
    ],
)
def test_transform(data: bytes, settings: PipelineSettings, expected: bytes):
    assert run(data, settings, upper) == expected


def test_batches_given_to_invoke():
    seen: list[Batch] = []

    def record(batch: Batch) -> bytes:
        seen.append(batch)
        return b""

    run(CSV, PipelineSettings(split_type="Line", max_payload_bytes=7), record)
    assert seen == [Batch(b"a,1\nb,2", 1, 2), Batch(b"c,3\nd,4", 3, 2)]


@pytest.mark.parametrize("strategy", ["SingleRecord", "MultiRecord"])
def test_split_none_is_one_batch_whatever_the_strategy(strategy: str):
    seen: list[Batch] = []

    def record(batch: Batch) -> bytes:
        seen.append(batch)
        return batch.payload

    settings = PipelineSettings(batch_strategy=strategy)
    assert run(CSV, settings, record, chunk_size=1) == CSV
    assert seen == [Batch(CSV, 1, 1)]


def test_stats_follow_the_stream():
    compressed = gzip.compress(CSV)
    stats = PipelineStats()
    settings = PipelineSettings(compression="Gzip", split_type="Line", max_payload_bytes=7)
    output = b"".join(transform_stream(chunked(compressed, 5), settings, upper, stats))
    assert stats == PipelineStats(
        records=4, batches=2, bytes_in=len(compressed), bytes_out=len(output)
    )
    assert output == b"A,1\nB,2C,3\nD,4"


def test_concurrent_invokes_keep_order_on_many_records():
    data = b"".join(b"%d\n" % n for n in range(500))
    settings = PipelineSettings(
        split_type="Line", batch_strategy="SingleRecord", max_concurrent=8, assemble_with="Line"
    )
    threads: set[str] = set()

    def note_thread(batch: Batch) -> bytes:
        threads.add(threading.current_thread().name)
        return batch.payload

    assert run(data, settings, note_thread, chunk_size=64) == data
    assert threading.current_thread().name not in threads


@pytest.mark.parametrize(
    ("data", "settings", "record"),
    [
        pytest.param(b"x" * 11, PipelineSettings(max_payload_bytes=10), 1, id="split-none"),
        pytest.param(
            b"ab\n" + b"x" * 11 + b"\n",
            PipelineSettings(split_type="Line", max_payload_bytes=10),
            2,
            id="line",
        ),
    ],
)
def test_oversized_record_fails_the_object(data: bytes, settings: PipelineSettings, record: int):
    with pytest.raises(DataError, match="larger than the payload limit of 10 bytes") as caught:
        run(data, settings)
    assert caught.value.record == record


@pytest.mark.parametrize(
    ("split_type", "chunk"),
    [pytest.param("None", b"xyz\n", id="split-none"), pytest.param("Line", b"xyz", id="line")],
)
def test_oversized_record_fails_without_reading_the_rest(split_type: str, chunk: bytes):
    taken = 0

    def endless() -> Iterator[bytes]:
        nonlocal taken
        while taken < 100:
            taken += 1
            yield chunk
        raise AssertionError("read on past an oversized record")

    settings = PipelineSettings(split_type=split_type, max_payload_bytes=10)
    with pytest.raises(DataError, match="larger than the payload limit of 10 bytes"):
        b"".join(transform_stream(endless(), settings, echo))
    assert taken <= 4


def test_unlimited_payload_takes_any_size():
    data = b"y" * 100_000
    assert run(data, PipelineSettings(max_payload_bytes=0), chunk_size=4096) == data


@pytest.mark.parametrize("concurrency", [1, 4])
def test_model_error_propagates_unchanged(concurrency: int):
    error = ModelError("model said no", status=400, body="bad row")

    def refuse_third(batch: Batch) -> bytes:
        if batch.first_record == 3:
            raise error
        return batch.payload

    settings = PipelineSettings(
        split_type="Line", batch_strategy="SingleRecord", max_concurrent=concurrency
    )
    output = transform_stream(chunked(CSV, 4), settings, refuse_third)
    assert next(output) == b"a,1"
    assert next(output) == b"b,2"
    with pytest.raises(ModelError) as caught:
        next(output)
    assert caught.value is error
    assert [
        thread for thread in threading.enumerate() if thread.name.startswith("ordered_map")
    ] == []


def test_closing_early_frees_the_pool():
    settings = PipelineSettings(split_type="Line", batch_strategy="SingleRecord", max_concurrent=4)
    output = transform_stream(chunked(b"1\n2\n3\n4\n5\n6\n7\n8\n", 2), settings, echo)
    assert next(output) == b"1"
    output.close()
    assert [
        thread for thread in threading.enumerate() if thread.name.startswith("ordered_map")
    ] == []


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(PipelineSettings(compression="gzip"), id="compression"),
        pytest.param(PipelineSettings(split_type="Lines"), id="split-type"),
        pytest.param(PipelineSettings(batch_strategy="MULTI_RECORD"), id="strategy"),
        pytest.param(PipelineSettings(max_concurrent=0), id="concurrency"),
        pytest.param(PipelineSettings(assemble_with="Newline"), id="assemble-with"),
    ],
)
def test_bad_settings_fail_before_reading(settings: PipelineSettings):
    def never_read() -> Iterator[bytes]:
        raise AssertionError("read")
        yield b""

    with pytest.raises(ValueError, match=r"unknown|concurrency"):
        transform_stream(never_read(), settings, echo)


@pytest.mark.parametrize(
    "settings",
    [
        PipelineSettings(split_type="Line", max_payload_bytes=8, assemble_with="Line"),
        PipelineSettings(split_type="Line", batch_strategy="SingleRecord", assemble_with="Line"),
    ],
    ids=["line-multirecord", "single-record"],
)
def test_without_read_ahead_the_same_output_comes_from_the_callers_thread(
    settings: PipelineSettings,
):
    """A small object's pipeline cuts its batches where it runs: no thread per object."""
    seen: set[str] = set()

    def traced(batch: Batch) -> bytes:
        seen.update(thread.name for thread in threading.enumerate())
        return upper(batch)

    ahead = run(CSV, settings, traced)
    assert "read-ahead" in seen
    seen.clear()
    alone = run(CSV, replace(settings, read_ahead=False), traced)
    assert alone == ahead
    assert "read-ahead" not in seen
