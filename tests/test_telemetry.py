"""A job's telemetry, end to end and in its parts: real jobs through the embedded service
(local processes, 2 instances) record whole-job and per-instance samples, their model
calls' latency, retries and restarts add up across instances and items, and their
instance-seconds grow while they run; the histogram and instance lifetimes as the
controller keeps them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from documents import job_request
from lifecycle import wait_for_end
from models import tar_model, write_model
from runtimes.model_server import write_launcher
from test_end_to_end import wait_until, write_inputs

from batchtransform import Session
from batchtransform.service import Service
from batchtransform.telemetry import (
    LATENCY_BUCKETS,
    InstanceLifetimes,
    InvocationStats,
    Latency,
    SampleBuffer,
)

# Fails the first call of each instance (a 500, which is retried), then echoes slowly
# enough that the instances live for a few samples.
FAIL_ONCE_HANDLER = """
import time

failed = []

def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    if not failed:
        failed.append(True)
        raise RuntimeError("the first call of this instance fails")
    time.sleep(0.04)
    return "".join(f"out:{line}\\n" for line in body.split("\\n") if line)
"""
FILES = {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(20)) for i in range(4)}
RECORDS = sum(text.count("\n") for text in FILES.values())


def make_model(session: Session, folder: Path, handler: str) -> None:
    archive = tar_model(write_model(folder / "model-src", handler), folder / "model.tar.gz")
    session.create_model(
        ModelName="m1",
        PrimaryContainer={"Image": "batchtransform/python", "ModelDataUrl": archive.as_uri()},
    )


def start(session: Session, tmp_path: Path, files: dict[str, str], **overrides: Any) -> None:
    write_inputs(tmp_path / "in", dict(files))
    request = job_request(
        input_uri=str(tmp_path / "in") + "/", output_path=str(tmp_path / "out"), **overrides
    )
    session.create_transform_job(**request)


def embedded(session: Session) -> Service:
    assert isinstance(session.service, Service)
    return session.service


def progress_record(session: Session) -> dict[str, Any]:
    record = embedded(session).store.get_job("job-1")
    assert record is not None
    return record.progress


def assert_histogram(latency: dict[str, Any], calls: int) -> None:
    """Prometheus's shape: cumulative counts per bound, the last (+Inf) all the calls."""
    assert latency["buckets"] == list(LATENCY_BUCKETS)
    counts = latency["counts"]
    assert len(counts) == len(LATENCY_BUCKETS) + 1
    assert counts == sorted(counts) and counts[-1] == latency["count"] == calls
    assert latency["sum"] > 0


def test_a_job_records_samples_and_its_counters_add_up(tmp_path: Path) -> None:
    session = Session()
    make_model(session, tmp_path, FAIL_ONCE_HANDLER)
    start(
        session, tmp_path, FILES, BatchStrategy="SingleRecord",
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 2},
    )  # fmt: skip

    wait_until(lambda: bool(progress_record(session).get("in_flight")))
    under_way = progress_record(session)["in_flight"][0]
    assert Path(under_way["object"]).name in FILES and under_way["instance"] in (
        "instance-1",
        "instance-2",
    )
    assert under_way["started"] > 0
    wait_until(lambda: progress_record(session).get("instance_seconds"))
    first = progress_record(session)["instance_seconds"]["ml.m5.large"]
    wait_until(lambda: progress_record(session)["instance_seconds"]["ml.m5.large"] > first)
    description = wait_for_end(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")

    progress = progress_record(session)
    assert progress["records"] == RECORDS
    assert progress["retries"] == 2, "each instance's first call, once"
    assert progress["restarts"] == 0
    assert_histogram(progress["latency"], RECORDS + 2)  # a call per record, and the failed
    assert progress["in_flight"] == [] and progress["failures"] == []
    spent = progress["instance_seconds"]
    assert description["Progress"]["InstanceSeconds"] == spent
    assert set(spent) == {"ml.m5.large"} and spent["ml.m5.large"] > first
    assert spent == progress_record(session)["instance_seconds"], "not growing once ended"

    samples = embedded(session).job_samples("job-1")
    assert [s.time for s in samples] == sorted(s.time for s in samples)
    whole = [s for s in samples if s.instance == ""]
    assert len(whole) >= 2 and whole[-1].values["records"] == RECORDS
    assert whole[-1].values["objects_completed"] == len(FILES)
    assert [s.values["records"] for s in whole] == sorted(s.values["records"] for s in whole)
    instances = {s.instance for s in samples} - {""}
    assert instances == {"instance-1", "instance-2"}
    for sample in (s for s in samples if s.instance):
        assert sample.values["cpu_percent"] >= 0
        assert sample.values["memory_bytes"] > 20 * 2**20, "a Python process with a model"
        assert 0 < sample.values["memory_percent"] < 100
    assert embedded(session).job_samples("job-1", since=whole[-1].time) == [
        s for s in samples if s.time > whole[-1].time
    ]


def test_a_model_server_that_exits_is_restarted_and_counted(tmp_path: Path) -> None:
    session = Session()
    environment = {"MODEL_SERVER_MODE": "crash-at", "MODEL_SERVER_CRASH_AT": "3"}
    session.create_model(
        ModelName="m1",
        PrimaryContainer={
            "Image": f"process://{write_launcher(tmp_path)}",
            "Environment": environment,
        },
    )
    start(session, tmp_path, {"a.csv": "1\n2\n3\n4\n"}, BatchStrategy="SingleRecord")

    description = wait_for_end(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    progress = progress_record(session)
    # the server exits at its 3rd call; the new one answers that record again and the 4th
    assert progress["restarts"] == 1
    assert progress["retries"] == 1
    assert_histogram(progress["latency"], 4 + 1)


def test_latency_is_counted_in_prometheus_buckets() -> None:
    calls = InvocationStats()
    for seconds in (0.001, 0.005, 0.0051, 0.3, 61.0):  # a bound's bucket holds calls <= it
        calls.observe(seconds)
    calls.retried()
    counters = calls.counters()
    assert counters["retries"] == 1
    latency: Latency = counters["latency"]
    merged = Latency.merged([latency, latency]).as_record()
    expected = [2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5]
    assert merged["counts"] == [2 * n for n in expected]
    assert merged["count"] == 10 and merged["sum"] == pytest.approx(2 * 61.3111)
    before = list(latency.counts)
    calls.observe(0.01)
    assert latency.counts == before, "what was sent is a copy"


def test_instance_seconds_add_lifetimes_and_an_earlier_runs() -> None:
    lifetimes = InstanceLifetimes("ml.c5.xlarge", {"ml.c5.xlarge": 100.0, "ml.m5.large": 7.0})
    assert lifetimes.as_record() == {"ml.c5.xlarge": 100.0, "ml.m5.large": 7.0}
    lifetimes.launch(1)
    lifetimes.launch(2)
    time.sleep(0.05)
    lifetimes.end(1)
    lifetimes.end(3)  # never launched: nothing to end
    growing = lifetimes.as_record()["ml.c5.xlarge"]
    assert growing >= 100.1
    lifetimes.end_all()
    ended = lifetimes.as_record()["ml.c5.xlarge"]
    time.sleep(0.02)
    assert lifetimes.as_record()["ml.c5.xlarge"] == ended >= growing


def test_whole_job_samples_are_taken_every_few_seconds_or_when_forced() -> None:
    buffer = SampleBuffer("job-1")
    totals = {"records": 5, "bytes_in": 10, "bytes_out": 12, "objects_completed": 1}
    buffer.whole_job(totals)
    buffer.whole_job({**totals, "records": 6})  # too soon after the first
    buffer.instance_sample(2, {"time": 1.5, "cpu_percent": 150, "memory_bytes": 1e9})
    buffer.whole_job({**totals, "records": 7}, force=True)
    taken = buffer.take()
    assert [(s.instance, s.values.get("records")) for s in taken] == [
        ("", 5.0),
        ("instance-2", None),
        ("", 7.0),
    ]
    assert taken[0].values["failed_records"] == 0.0
    assert taken[1].time == 1.5 and taken[1].values == {"cpu_percent": 150.0, "memory_bytes": 1e9}
    assert buffer.take() == []
