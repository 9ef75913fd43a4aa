"""Many small objects on real S3 servers (moto and SeaweedFS): one request to read each and
one to write each, and a job stopped while its instances hold several leaves only whole
outputs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import fsspec
from documents import job_request
from models import SLOW_HANDLER, echoed
from s3servers import S3Server
from test_end_to_end import make_model, records_done, wait_for, wait_until

from batchtransform import Session, objects


def _requests(url: str) -> Counter[str]:
    """The S3 operations the filesystem of ``url`` sends from now on, counted by name."""
    fs, _ = fsspec.core.url_to_fs(url)
    fs.connect()
    sent: Counter[str] = Counter()

    def count(model: Any, **kwargs: Any) -> None:
        sent[model.name] += 1

    fs.s3.meta.events.register("before-call.s3", count)
    return sent


def test_a_small_object_is_read_in_one_request(s3: S3Server, s3_bucket: str) -> None:
    s3.client().put_object(Bucket=s3_bucket, Key="in/a.csv", Body=b"1,2\n3,4\n")
    url = f"s3://{s3_bucket}/in/a.csv"
    sent = _requests(url)

    assert objects.read_bytes(url) == b"1,2\n3,4\n"
    assert sent == {"GetObject": 1}, "no HEAD first for the size"


def test_a_small_output_is_written_in_one_request_that_gives_its_stamp(
    s3: S3Server, s3_bucket: str
) -> None:
    url = f"s3://{s3_bucket}/out/a.csv.out"
    sent = _requests(url)

    stamp = objects.write_bytes(url, b"0.5\n0.25\n")
    assert sent == {"PutObject": 1}
    assert stamp is not None and stamp == objects.stamp(url)
    assert s3.client().get_object(Bucket=s3_bucket, Key="out/a.csv.out")["Body"].read() == (
        b"0.5\n0.25\n"
    )


def test_a_job_stopped_while_its_instances_hold_small_objects_leaves_whole_outputs(
    moto_s3: S3Server, s3_env: Any, new_bucket: Any, tmp_path: Path
) -> None:
    """Stopped with objects done, under way, read ahead and not yet sent: each output
    there is whole and exact, and no upload is left open."""
    server = s3_env(moto_s3)
    bucket = new_bucket(server)
    client = server.client()
    contents = {f"in/{n:02d}.csv": f"{n},a\n{n},b\n" for n in range(40)}
    for key, text in contents.items():
        client.put_object(Bucket=bucket, Key=key, Body=text.encode())
    session = Session()
    make_model(session, tmp_path, SLOW_HANDLER)
    request = job_request(
        input_uri=f"s3://{bucket}/in/",
        output_path=f"s3://{bucket}/out/",
        TransformResources={"InstanceCount": 2},
    )
    session.create_transform_job(**request)
    wait_until(lambda: records_done(session) >= 8)
    session.stop_transform_job(TransformJobName="job-1")

    description = wait_for(session, "job-1")
    assert description["TransformJobStatus"] == "Stopped"
    listed = client.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents", [])
    written = [item["Key"] for item in listed]
    assert 4 <= len(written) < len(contents)
    for key in written:
        source = key.replace("out/", "in/").removesuffix(".out")
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == echoed(contents[source])
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
