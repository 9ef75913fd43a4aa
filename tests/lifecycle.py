"""Waiting on what tests start: a job until it ends, a process until it is gone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from batchtransform import Session

JOB_TIMEOUT = 120.0


def wait_for_end(session: Session, name: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
    """The job's description once it has ended; fails the test (never hangs) if it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        description = session.describe_transform_job(TransformJobName=name)
        if description["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            return description
        time.sleep(0.2)
    raise AssertionError(f"job {name} did not end within {timeout} s")


def alive(pid: int) -> bool:
    """Whether the process runs: a zombie (ended, not yet reaped) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
