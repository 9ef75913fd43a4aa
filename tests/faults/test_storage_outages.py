"""The S3 store goes away: for 20 seconds mid-job (waited out), or for good (a clear failure
naming the object and the endpoint)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from documents import job_request
from faultkit import assert_no_process_left, open_uploads, wait_until
from lifecycle import wait_for_end
from models import echoed
from outage import restartable_seaweed
from s3servers import S3Server
from test_end_to_end import make_model, write_inputs

from batchtransform import Session
from batchtransform.logs import logs_dir
from batchtransform.outages import RETRY_SECONDS_ENV
from batchtransform.s3_transfer import S3_PART_SIZE

# Echoes each record after a pause per request, so that the job is still running when the
# store goes away.
PAUSED_ECHO_HANDLER = """
import time

def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    time.sleep(0.25)
    text = body.decode() if isinstance(body, bytes) else body
    return "".join(f"out:{line}\\n" for line in text.split("\\n"))
"""
OUTAGE_SECONDS = 20


def csv_text(seed: int, size: int) -> str:
    """Deterministic CSV lines adding up to about ``size`` bytes."""
    lines, total, n = [], 0, 0
    while total < size:
        line = f"{seed},{n},{(n * 7919 + seed) % 1000003}\n"
        lines.append(line)
        total += len(line)
        n += 1
    return "".join(lines)


@pytest.mark.slow
def test_a_20_second_outage_mid_job_is_waited_out(
    session: Session,
    s3_env: Callable[[S3Server], S3Server],
    tmp_path: Path,
    batchtransform_home: Path,
) -> None:
    root = tmp_path / "seaweed"
    root.mkdir()
    with restartable_seaweed(root) as seaweed:
        server = s3_env(seaweed.server)
        bucket, client = server.make_bucket(), server.client()
        inputs = {f"part-{n}.csv": csv_text(n, 5 * 2**19) for n in range(6)}
        inputs["big.csv"] = csv_text(99, S3_PART_SIZE + 2**20)  # a multipart output
        for name, text in inputs.items():
            client.put_object(Bucket=bucket, Key=f"in/{name}", Body=text.encode())
        make_model(session, tmp_path, PAUSED_ECHO_HANDLER)
        session.create_transform_job(
            **job_request(
                input_uri=f"s3://{bucket}/in/",
                output_path=f"s3://{bucket}/out/",
                BatchStrategy="MultiRecord",
                MaxPayloadInMB=1,
                TransformResources={"InstanceCount": 2},
            )
        )

        def completed() -> int:
            described = session.describe_transform_job(TransformJobName="job-1")
            return int(described["Progress"]["ObjectsCompleted"])

        wait_until(lambda: completed() >= 1, what="a first output")
        seaweed.stop()
        assert completed() < len(inputs), "the outage must begin while the job runs"
        time.sleep(OUTAGE_SECONDS)
        seaweed.start()
        description = wait_for_end(session, "job-1", timeout=240)

        assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
        listed = client.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents", [])
        assert sorted(item["Key"] for item in listed) == sorted(f"out/{k}.out" for k in inputs)
        for name, text in inputs.items():
            written = client.get_object(Bucket=bucket, Key=f"out/{name}.out")["Body"].read()
            assert written == echoed(text), name
        progress = description["Progress"]
        assert (progress["ObjectsCompleted"], progress["ObjectsFailed"]) == (len(inputs), 0)
        assert open_uploads(server, bucket, "out/") == []
        model_logs = "".join(p.read_text() for p in logs_dir("job-1").glob("*.log"))
        assert f"the store at {server.endpoint_url} is not answering" in model_logs
        assert f"the store at {server.endpoint_url} answers again" in model_logs
    assert_no_process_left(batchtransform_home)  # the store's own processes included


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("side", ["output", "input"])
def test_a_permanent_outage_fails_naming_the_object_and_the_endpoint(
    session: Session,
    s3_env: Callable[[S3Server], S3Server],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    batchtransform_home: Path,
    side: str,
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    s3_env(S3Server(endpoint, "AKIDOUTAGE", "outage-secret"))
    monkeypatch.setenv(RETRY_SECONDS_ENV, "1")
    write_inputs(tmp_path / "in", {"a.csv": "1\n2\n"})
    make_model(session, tmp_path, PAUSED_ECHO_HANDLER)
    local_in, local_out = str(tmp_path / "in") + "/", str(tmp_path / "out")
    input_uri, output_path = {
        "output": (local_in, "s3://bucket/out"),
        "input": ("s3://bucket/in/", local_out),
    }[side]
    session.create_transform_job(**job_request(input_uri=input_uri, output_path=output_path))
    description = wait_for_end(session, "job-1")

    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert reason.startswith("ClientError: ") and "\n" not in reason
    named = {
        "output": "cannot write s3://bucket/out/a.csv.out",
        "input": "cannot list s3://bucket/in/",
    }
    assert named[side] in reason
    assert f"the store at {endpoint} did not answer" in reason
    assert not (tmp_path / "out").exists()
    assert_no_process_left(batchtransform_home)
