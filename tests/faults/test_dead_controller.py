"""A job's controller killed outright: `batchtransform server` ends the job within seconds
without anyone reading it, and the job's instances follow their controller out."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from documents import job_request, model_request
from faultkit import processes_with_home, wait_until
from models import SLOW_HANDLER, tar_model, write_model
from test_end_to_end import write_inputs

from batchtransform.store import open_store


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    """``batchtransform server`` as its own process, on a free loopback port: its URL and
    its process id."""
    command = [sys.executable, "-m", "batchtransform.cli", "server", "--port", "0", "--no-auth"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", banner)
        assert found, f"no address in the server's first line: {banner!r}"
        yield found.group(), process.pid
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_the_server_ends_a_job_whose_controller_was_killed(
    server: tuple[str, int], tmp_path: Path, batchtransform_home: Path
) -> None:
    server_url, server_pid = server
    client = boto3.client(
        "sagemaker",
        endpoint_url=server_url,
        region_name="us-east-1",
        aws_access_key_id="AKIDUNUSED",
        aws_secret_access_key="unused",
    )
    archive = tar_model(write_model(tmp_path / "src", SLOW_HANDLER), tmp_path / "model.tar.gz")
    client.create_model(**model_request("m1", archive.as_uri()))
    write_inputs(tmp_path / "in", {"a.csv": "".join(f"{n}\n" for n in range(200))})
    client.create_transform_job(
        **job_request(
            input_uri=str(tmp_path / "in") + "/",
            output_path=str(tmp_path / "out"),
            BatchStrategy="SingleRecord",
        )
    )
    client.close()
    store = open_store()  # read behind the server's back, as another process would

    def record_progress() -> int:
        record = store.get_job("job-1")
        assert record is not None
        return int(record.progress.get("records", 0))

    wait_until(lambda: record_progress() > 0, what="the job under way")
    record = store.get_job("job-1")
    assert record is not None and record.controller_pid
    os.kill(record.controller_pid, signal.SIGKILL)

    wait_until(lambda: store.get_job("job-1").status != "InProgress", timeout=30)  # type: ignore[union-attr]
    ended = store.get_job("job-1")
    assert ended is not None and ended.status == "Failed"
    assert ended.failure_reason == (
        "InternalServerError: the job's controller process exited unexpectedly."
    )
    assert not list((tmp_path / "out").glob("a.csv.out")), "the file was not finished"
    # instances leave once their controller is gone; only the server itself remains
    wait_until(lambda: processes_with_home(batchtransform_home) == [server_pid], timeout=20)
