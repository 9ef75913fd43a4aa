"""Servers on several machines share one database: a controller's process id is judged
only on its own host (SQLite and PostgreSQL, ``database_url``)."""

from __future__ import annotations

import subprocess
import sys

from documents import job_request, model_request

from batchtransform import config
from batchtransform.service import Service
from batchtransform.store import open_store


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_launched_controller_is_recorded_with_its_host(database_url: str) -> None:
    service = Service(open_store(), launcher=lambda record: 4242)
    service.call("CreateModel", model_request())
    service.call("CreateTransformJob", job_request("job-1"))
    record = service.store.get_job("job-1")
    assert record is not None
    assert (record.controller_pid, record.controller_host) == (4242, config.host_name())


def test_only_controllers_on_this_host_are_judged(database_url: str) -> None:
    service = Service(open_store(), launcher=lambda record: None)
    service.call("CreateModel", model_request())
    for name in ("here", "elsewhere", "unrecorded"):
        service.call("CreateTransformJob", job_request(name))
    gone = dead_pid()
    service.store.update_job("here", controller_pid=gone, controller_host=config.host_name())
    service.store.update_job("elsewhere", controller_pid=gone, controller_host="other-machine")
    service.store.update_job("unrecorded", controller_pid=gone)  # from before hosts were kept

    assert sorted(service.check_controllers()) == ["here", "unrecorded"]
    described = service.call("DescribeTransformJob", {"TransformJobName": "elsewhere"})
    assert described["TransformJobStatus"] == "InProgress"  # its own host's servers decide
    for name in ("here", "unrecorded"):
        described = service.call("DescribeTransformJob", {"TransformJobName": name})
        assert described["TransformJobStatus"] == "Failed"
        assert "controller process exited unexpectedly" in described["FailureReason"]
