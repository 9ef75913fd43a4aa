"""Stops swept across the commit of an output, locally and on S3.

A writer process (the real ``objects.atomic_writer``, SIGTERM turned into SystemExit as in
an instance) is stopped at times spread over its whole write, its commit slowed so that
many stops land inside it. Whatever the moment: the output is either absent or complete,
no temporary file is left, and no multipart upload stays open. A whole job stopped while
its outputs are being committed counts exactly the outputs that exist, including one the
store had taken when the stop overtook its writer (the store's answer held back by a
proxy, ``slowproxy``).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from documents import job_request
from faultkit import assert_no_process_left, open_uploads, wait_until
from lifecycle import wait_for_end
from models import ECHO_HANDLER, echoed
from s3servers import S3Server
from slowproxy import AnswerDelayProxy
from test_end_to_end import make_model, outputs, write_inputs

from batchtransform import Session

MiB = 2**20
SIZE = 9 * MiB  # a multipart upload of two parts on S3
STOPS = 8

# Writes SIZE bytes of a known pattern through atomic_writer. The commit's requests (the
# S3 PUT or completion, the local rename) are slowed on both sides, so a stop can land
# before the request and after it while the process has not yet returned.
WRITER = """
import hashlib, os, signal, sys, time
import s3fs

def stop(signum, frame):
    raise SystemExit(128 + signum)

signal.signal(signal.SIGTERM, stop)
from batchtransform import objects

def slowed(call):
    def wrapper(*args, **kwargs):
        time.sleep(0.15)
        result = call(*args, **kwargs)
        time.sleep(0.15)
        return result
    return wrapper

committing = ("upload_part", "complete_multipart_upload", "put_object")
call_s3 = s3fs.S3FileSystem.call_s3
s3fs.S3FileSystem.call_s3 = lambda self, method, *a, **k: (
    slowed(call_s3) if method in committing else call_s3)(self, method, *a, **k)
os.replace = slowed(os.replace)

url, size = sys.argv[1], int(sys.argv[2])
block = hashlib.sha256(b"pattern").digest() * (2**20 // 32)
print("writing", flush=True)
with objects.atomic_writer(url) as out:
    for _ in range(size // len(block)):
        out.write(block)
print("committed", flush=True)
"""


def expected_bytes() -> bytes:
    return hashlib.sha256(b"pattern").digest() * (MiB // 32) * (SIZE // MiB)


def run_writer(url: str, stop_after: float | None) -> tuple[bool, float]:
    """Run the writer, SIGTERM it ``stop_after`` seconds into its write (None: never);
    return whether it reported the commit and how long the write ran."""
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(SIZE)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "writing\n"
    began = time.monotonic()
    if stop_after is not None:
        time.sleep(stop_after)
        process.terminate()
    rest = process.communicate(timeout=60)[0]
    return "committed" in rest, time.monotonic() - began


class Store:
    """Where the writer writes, and what is there afterwards."""

    def url(self, n: int) -> str:
        raise NotImplementedError

    def read(self, n: int) -> bytes | None:
        raise NotImplementedError

    def leftovers(self) -> list[str]:
        """Temporary files or open uploads: anything but finished outputs."""
        raise NotImplementedError


class LocalStore(Store):
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def url(self, n: int) -> str:
        return str(self.folder / f"out-{n}.out")

    def read(self, n: int) -> bytes | None:
        path = self.folder / f"out-{n}.out"
        return path.read_bytes() if path.exists() else None

    def leftovers(self) -> list[str]:
        return [p.name for p in self.folder.glob(".*")] if self.folder.exists() else []


class S3Store(Store):
    def __init__(self, server: S3Server, bucket: str) -> None:
        self.server, self.bucket, self.client = server, bucket, server.client()

    def url(self, n: int) -> str:
        return f"s3://{self.bucket}/out/out-{n}.out"

    def read(self, n: int) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=f"out/out-{n}.out")
        except self.client.exceptions.NoSuchKey:
            return None
        return bytes(answer["Body"].read())

    def leftovers(self) -> list[str]:
        return open_uploads(self.server, self.bucket, "out/")


@pytest.fixture(params=["local", "s3"])
def store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    s3_env: Callable[[S3Server], S3Server],
    new_bucket: Callable[[S3Server], str],
) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "out")
    server = s3_env(request.getfixturevalue("seaweed_s3"))
    return S3Store(server, new_bucket(server))


@pytest.mark.slow
def test_stops_swept_across_a_commit_leave_all_or_nothing(store: Store) -> None:
    committed, duration = run_writer(store.url(0), stop_after=None)
    assert committed and store.read(0) == expected_bytes()
    outcomes = []
    for n in range(1, STOPS + 1):
        stop_after = duration * n / STOPS  # the last stops fall inside the slowed commit
        committed, _ = run_writer(store.url(n), stop_after)
        written = store.read(n)
        assert written in (None, expected_bytes()), f"a partial output after a stop at {n}"
        if committed:
            assert written == expected_bytes()
        assert store.leftovers() == [], f"left behind by a stop at {stop_after:.2f} s"
        outcomes.append(written is not None)
    assert not all(outcomes), "some stops must land before the commit"


def test_a_job_stopped_while_committing_counts_exactly_its_outputs(
    session: Session,
    store: Store,
    tmp_path: Path,
    batchtransform_home: Path,
) -> None:
    """Many small outputs, committed every few milliseconds: a stop always catches some
    whose 'done' the controller has not read yet."""
    files = {f"f{n:02}.csv": f"{n},a\n{n},b\n" for n in range(60)}
    write_inputs(tmp_path / "in", dict(files))
    make_model(session, tmp_path, ECHO_HANDLER)
    output_path = store.url(0).rsplit("/", 1)[0]
    session.create_transform_job(
        **job_request(
            input_uri=str(tmp_path / "in") + "/",
            output_path=output_path,
            TransformResources={"InstanceCount": 2},
        )
    )

    def completed() -> int:
        described = session.describe_transform_job(TransformJobName="job-1")
        return int(described["Progress"]["ObjectsCompleted"])

    wait_until(lambda: completed() >= 5, what="some outputs")
    session.stop_transform_job(TransformJobName="job-1")
    description = wait_for_end(session, "job-1")

    progress = description["Progress"]
    present = {name: data for name in files if (data := read_output(store, name)) is not None}
    for name, data in present.items():
        assert data == echoed(files[name]), name
    if description["TransformJobStatus"] == "Stopped":
        assert progress["ObjectsCompleted"] == len(present), "every output that exists counts"
    else:  # the job finished before the stop reached it
        assert description["TransformJobStatus"] == "Completed"
        assert len(present) == len(files)
    assert progress["ObjectsFailed"] == 0
    assert store.leftovers() == []
    assert_no_process_left(batchtransform_home)
    if isinstance(store, LocalStore):
        assert set(outputs(store.folder)) == {f"{name}.out" for name in present}


def read_output(store: Store, name: str) -> bytes | None:
    if isinstance(store, LocalStore):
        path = store.folder / f"{name}.out"
        return path.read_bytes() if path.exists() else None
    assert isinstance(store, S3Store)
    try:
        answer = store.client.get_object(Bucket=store.bucket, Key=f"out/{name}.out")
    except store.client.exceptions.NoSuchKey:
        return None
    return bytes(answer["Body"].read())


def test_an_output_whose_commit_the_stop_overtakes_is_counted(
    session: Session,
    seaweed_s3: S3Server,
    s3_env: Callable[[S3Server], S3Server],
    new_bucket: Callable[[S3Server], str],
    tmp_path: Path,
    batchtransform_home: Path,
) -> None:
    """The store has the object, but its writer is stopped while waiting for the answer
    to its PUT: the output exists and is whole, so it counts. (Small objects go to an
    instance several at a time, so the next one's PUT may be under way too: whatever is
    there is whole and counted.)"""
    bucket = new_bucket(s3_env(seaweed_s3))
    upstream_port = int(seaweed_s3.endpoint_url.rsplit(":", 1)[1])
    proxy = AnswerDelayProxy(upstream_port, f"PUT /{bucket}/out/".encode(), delay=3.0)
    proxy.start()
    try:
        s3_env(S3Server(proxy.endpoint_url, seaweed_s3.access_key, seaweed_s3.secret_key))
        files = {f"f{n}.csv": f"{n},a\n" for n in range(3)}
        write_inputs(tmp_path / "in", dict(files))
        make_model(session, tmp_path, ECHO_HANDLER)
        session.create_transform_job(
            **job_request(input_uri=str(tmp_path / "in") + "/", output_path=f"s3://{bucket}/out")
        )
        assert proxy.seen.wait(60), "no output was committed"
        session.stop_transform_job(TransformJobName="job-1")
        description = wait_for_end(session, "job-1")
    finally:
        proxy.stop()

    assert description["TransformJobStatus"] == "Stopped"
    client = seaweed_s3.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents", [])
    keys = [item["Key"] for item in listed]
    assert "out/f0.csv.out" in keys  # the output whose answer the stop overtook
    for key in keys:
        written = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert written == echoed(files[key.removeprefix("out/").removesuffix(".out")])
    assert description["Progress"]["ObjectsCompleted"] == len(keys)
    assert open_uploads(seaweed_s3, bucket, "out/") == []
    assert_no_process_left(batchtransform_home)
