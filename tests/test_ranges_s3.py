"""On real S3 servers (moto and SeaweedFS): ranges' parts put together, copied by the
server and small ones joined with their neighbours to respect the 5 MiB minimum part; and
many small objects, handed out several to an instance."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from documents import job_request
from models import ECHO_HANDLER, SLOW_HANDLER, echoed
from s3servers import S3Server
from test_end_to_end import (
    instance_pids,
    make_model,
    records_done,
    wait_for,
    wait_until,
)

from batchtransform import Session, objects

MIB = 2**20


def _data(size: int, seed: int) -> bytes:
    """``size`` bytes that differ from any other seed's, quickly."""
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def _uploads(server: S3Server, bucket: str) -> list[str]:
    found = server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [upload["Key"] for upload in found]


def _keys(server: S3Server, bucket: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


@pytest.mark.parametrize(
    "sizes",
    [
        # large parts copied, small ones between them joined to the next part's start
        [6 * MIB, 1000, 7 * MIB, 3 * MIB, 0, 5 * MIB + 1, 2],
        [1000, 2 * MIB, 17],  # all small: one PUT
        [0, 0],  # nothing at all
    ],
    ids=["mixed", "small", "empty"],
)
def test_concatenate_puts_the_parts_together_in_order(
    s3: S3Server, s3_bucket: str, sizes: list[int]
) -> None:
    client = s3.client()
    sources = []
    for number, size in enumerate(sizes):
        key = f"out/a.csv.out.part-{number:05d}"
        client.put_object(Bucket=s3_bucket, Key=key, Body=_data(size, number))
        sources.append(f"s3://{s3_bucket}/{key}")

    objects.concatenate(f"s3://{s3_bucket}/out/a.csv.out", sources)

    body = client.get_object(Bucket=s3_bucket, Key="out/a.csv.out")["Body"].read()
    assert body == b"".join(_data(size, n) for n, size in enumerate(sizes))
    assert _keys(s3, s3_bucket) == ["out/a.csv.out"]  # the parts are gone
    assert _uploads(s3, s3_bucket) == []


def test_concatenate_with_a_part_missing_publishes_nothing(s3: S3Server, s3_bucket: str) -> None:
    client = s3.client()
    client.put_object(Bucket=s3_bucket, Key="out/p1", Body=_data(6 * MIB, 1))
    with pytest.raises(FileNotFoundError):
        objects.concatenate(
            f"s3://{s3_bucket}/out/a.out", [f"s3://{s3_bucket}/out/p1", f"s3://{s3_bucket}/out/p2"]
        )
    assert _keys(s3, s3_bucket) == ["out/p1"]
    assert _uploads(s3, s3_bucket) == []


def test_a_ranged_job_on_s3(s3: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    content = "".join(f"{n},{n % 7}\n" for n in range(400))
    s3.client().put_object(Bucket=s3_bucket, Key="in/a.csv", Body=content.encode())
    session = Session()
    make_model(session, tmp_path, ECHO_HANDLER)
    request = job_request(
        input_uri=f"s3://{s3_bucket}/in/",
        output_path=f"s3://{s3_bucket}/out/",
        Environment={"BATCHTRANSFORM_RANGE_SIZE_MB": "0.001"},  # 3 ranges
        TransformResources={"InstanceCount": 2},
    )
    session.create_transform_job(**request)
    description = wait_for(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert _keys(s3, s3_bucket) == ["in/a.csv", "out/a.csv.out"]
    body = s3.client().get_object(Bucket=s3_bucket, Key="out/a.csv.out")["Body"].read()
    assert body == echoed(content)
    assert _uploads(s3, s3_bucket) == []


def test_many_small_objects_on_s3(
    seaweed_s3: S3Server, s3_env: Any, new_bucket: Any, tmp_path: Path
) -> None:
    """Small objects go out several to an instance, read ahead and uploaded behind."""
    s3 = s3_env(seaweed_s3)
    s3_bucket = new_bucket(s3)
    client = s3.client()
    contents = {f"in/{n:03d}.csv": f"{n},1\n{n},2\n" for n in range(24)}
    for key, text in contents.items():
        client.put_object(Bucket=s3_bucket, Key=key, Body=text.encode())
    session = Session()
    make_model(session, tmp_path, ECHO_HANDLER)
    request = job_request(
        input_uri=f"s3://{s3_bucket}/in/",
        output_path=f"s3://{s3_bucket}/out/",
        TransformResources={"InstanceCount": 2},
    )
    session.create_transform_job(**request)
    description = wait_for(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert description["Progress"]["ObjectsCompleted"] == 24
    for key, text in contents.items():
        out = key.replace("in/", "out/") + ".out"
        assert client.get_object(Bucket=s3_bucket, Key=out)["Body"].read() == echoed(text)
    assert len(_keys(s3, s3_bucket)) == 48
    assert _uploads(s3, s3_bucket) == []


@pytest.mark.slow  # 12 s of a slow model: make test-slow (and CI) runs it
def test_a_killed_instance_holding_small_objects(
    moto_s3: S3Server, s3_env: Any, new_bucket: Any, tmp_path: Path
) -> None:
    """The objects an instance held beyond its current one go back to the queue when it
    dies, and run elsewhere: every output exact, none missing."""
    server = s3_env(moto_s3)
    bucket = new_bucket(server)
    client = server.client()
    contents = {f"in/{n:02d}.csv": "".join(f"{n}-{r}\n" for r in range(2)) for n in range(12)}
    for key, text in contents.items():
        client.put_object(Bucket=bucket, Key=key, Body=text.encode())
    session = Session()
    make_model(session, tmp_path, SLOW_HANDLER)
    request = job_request(
        input_uri=f"s3://{bucket}/in/",
        output_path=f"s3://{bucket}/out/",
        BatchStrategy="SingleRecord",
        TransformResources={"InstanceCount": 2},
    )
    session.create_transform_job(**request)
    wait_until(lambda: records_done(session) > 2)
    pid = session.service.store.get_job("job-1").controller_pid  # type: ignore[union-attr]
    os.kill(instance_pids(pid)[0], signal.SIGKILL)

    description = wait_for(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    for key, text in contents.items():
        out = key.replace("in/", "out/") + ".out"
        assert client.get_object(Bucket=bucket, Key=out)["Body"].read() == echoed(text)
    assert _uploads(server, bucket) == []


def test_a_stopped_ranged_job_leaves_nothing_on_s3(
    moto_s3: S3Server,
    s3_env: Any,
    new_bucket: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parts written, parts under way, parts not begun: after the stop of a job that keeps
    no parts for a resume, nothing of the object is left under the output prefix, and no
    upload is open."""
    monkeypatch.setenv("BATCHTRANSFORM_KEEP_PARTS_SECONDS", "0")
    server = s3_env(moto_s3)
    bucket = new_bucket(server)
    client = server.client()
    content = "".join(f"{n:04d}\n" for n in range(300))
    client.put_object(Bucket=bucket, Key="in/big.csv", Body=content.encode())
    session = Session()
    make_model(session, tmp_path, SLOW_HANDLER)
    request = job_request(
        input_uri=f"s3://{bucket}/in/",
        output_path=f"s3://{bucket}/out/",
        BatchStrategy="SingleRecord",
        Environment={"BATCHTRANSFORM_RANGE_SIZE_MB": "0.0002"},  # 10 records a range
        TransformResources={"InstanceCount": 2},
    )
    session.create_transform_job(**request)
    wait_until(lambda: records_done(session) > 25)  # some parts written, others under way
    session.stop_transform_job(TransformJobName="job-1")
    description = wait_for(session, "job-1")
    assert description["TransformJobStatus"] == "Stopped"
    assert description["Progress"]["ObjectsCompleted"] == 0
    assert _keys(server, bucket) == ["in/big.csv"]
    assert _uploads(server, bucket) == []
