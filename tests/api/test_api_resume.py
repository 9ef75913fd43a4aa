"""ResumeTransformJob, our operation, over the signed HTTP API: the remote session signs it
as any operation (under its own target), and the server's errors come back as ours."""

from __future__ import annotations

import time

import pytest
from conftest import RunningServer

from batchtransform import Session
from batchtransform.errors import BatchTransformError, ConflictError, NotFoundError
from batchtransform.store import JobRecord


def test_a_signed_resume_reaches_the_service(api_server: RunningServer, aws_env: None) -> None:
    session = Session(endpoint_url=api_server.endpoint_url)
    with pytest.raises(NotFoundError, match="Could not find transform job"):
        session.resume_transform_job(TransformJobName="nobody")


def test_a_running_job_is_not_resumed(api_server: RunningServer, aws_env: None) -> None:
    now = time.time()
    request = {"TransformJobName": "job-1"}
    job = JobRecord("job-1", "arn:job-1", "m1", "InProgress", now, now, request)
    api_server.server.service.store.add_job(job)
    session = Session(endpoint_url=api_server.endpoint_url)
    with pytest.raises(ConflictError, match="it is InProgress; only a Failed or Stopped"):
        session.resume_transform_job(TransformJobName="job-1")


def test_a_bad_signature_is_refused(
    api_server: RunningServer, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    session = Session(endpoint_url=api_server.endpoint_url)
    with pytest.raises(BatchTransformError, match="signature") as raised:
        session.resume_transform_job(TransformJobName="nobody")
    assert getattr(raised.value, "code", "") == "InvalidSignatureException"
