"""The server's background check: jobs whose controller is gone end without anyone
reading them, over a real SQLite store and real (dead) processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from documents import job_request, model_request

from batchtransform.service import Service
from batchtransform.store import CommitRecord, Query, open_store
from batchtransform.watch import ControllerWatch


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def service_with_jobs(names: list[str]) -> Service:
    service = Service(open_store(), launcher=lambda record: None)
    service.call("CreateModel", model_request())
    for name in names:
        service.call("CreateTransformJob", job_request(name=name))
    return service


def test_check_controllers_ends_only_the_jobs_whose_controller_is_gone() -> None:
    service = service_with_jobs(["dead", "dead-stopping", "alive", "no-pid", "done"])
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        try:
            service.store.update_job("dead", controller_pid=dead_pid())
            service.store.update_job("dead-stopping", status="Stopping", controller_pid=dead_pid())
            service.store.update_job("alive", controller_pid=alive.pid)
            service.store.update_job("done", status="Completed", controller_pid=dead_pid())

            assert sorted(service.check_controllers()) == ["dead", "dead-stopping"]
            statuses = {r.name: r.status for r in service.store.list_jobs(Query(limit=100))}
        finally:
            alive.kill()
    assert statuses == {
        "dead": "Failed",
        "dead-stopping": "Stopped",
        "alive": "InProgress",
        "no-pid": "InProgress",
        "done": "Completed",
    }
    record = service.store.get_job("dead")
    assert record is not None and record.failure_reason is not None
    assert record.failure_reason.startswith("InternalServerError: ")


@pytest.mark.parametrize(
    ("status", "expected"), [("InProgress", "Failed"), ("Stopping", "Stopped")]
)
def test_the_watch_ends_a_dead_controllers_job_without_a_read(status: str, expected: str) -> None:
    service = service_with_jobs(["job-1"])
    service.store.update_job("job-1", status=status, controller_pid=dead_pid())
    watch = ControllerWatch(service, interval=0.05)
    watch.start()
    try:
        store = open_store()  # read behind the service's back, as another process would
        deadline = time.monotonic() + 30
        while (record := store.get_job("job-1")) is not None and record.status == status:
            assert time.monotonic() < deadline, "the watch did not end the job"
            time.sleep(0.05)
    finally:
        watch.stop()
    assert record is not None and record.status == expected


def test_the_watch_removes_the_range_parts_kept_past_their_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_KEEP_PARTS_SECONDS", "3600")
    service = service_with_jobs(["old", "recent"])
    now = time.time()
    parts = {}
    for name, ended in (("old", now - 3700), ("recent", now - 60)):
        part = tmp_path / f".{name}.csv.out.part-00001-of-00002"
        part.write_bytes(b"out:1\n")
        parts[name] = part
        service.store.update_job(
            name,
            status="Failed",
            end_time=ended,
            last_modified_time=ended,
            progress={"kept_parts": 1},
        )
        commit = CommitRecord(name, f"{name}.csv#0-10", str(part), "6:1", {"records": 1}, ended)
        service.store.record_commits([commit])

    watch = ControllerWatch(service, interval=0.05, sweep_interval=0.05)
    watch.start()
    try:
        deadline = time.monotonic() + 10
        while parts["old"].exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watch.stop()
    assert not parts["old"].exists(), "kept an hour past its job's end"
    assert parts["recent"].exists(), "still kept for a resume"
    old = service.store.get_job("old")
    assert old is not None and "kept_parts" not in old.progress
