"""What the fault suite checks after every fault: the job's end, exact counts, no process
of the job left, no multipart upload left open. Fixtures are in ``conftest.py``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from s3servers import S3Server


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not in time: {what or condition}"
        time.sleep(0.05)


def processes_with_home(home: Path) -> list[int]:
    """Live processes (other than this one) whose environment has this BATCHTRANSFORM_HOME:
    the job's controller, its instances, their model servers and anything those started."""
    marker = f"BATCHTRANSFORM_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if state != "Z" and marker in environment:
            found.append(int(entry.name))
    return found


def assert_no_process_left(home: Path, timeout: float = 15.0) -> None:
    """Nothing the job started outlives it (a few seconds allowed for exits in progress)."""
    deadline = time.monotonic() + timeout
    while left := processes_with_home(home):
        if time.monotonic() > deadline:
            commands = {pid: _command(pid) for pid in left}
            raise AssertionError(f"processes left behind by the job: {commands}")
        time.sleep(0.1)


def open_uploads(server: S3Server, bucket: str, prefix: str = "") -> list[str]:
    """Keys of multipart uploads still open under ``prefix``."""
    answer = server.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [upload["Key"] for upload in answer.get("Uploads", [])]


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "?"
