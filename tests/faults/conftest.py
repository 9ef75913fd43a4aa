"""Fixtures of the fault suite: jobs run for real (detached controller, instance processes,
model servers, the S3-compatible servers of ``tests/s3servers.py``), faults injected from
outside, and what must hold afterwards checked every time (``faultkit``): exact outputs,
exact counts, no process of the job left, no multipart upload left open.
"""

from __future__ import annotations

import pytest

from batchtransform import Session


@pytest.fixture
def session() -> Session:
    return Session()
