"""Real jobs: detached controllers, instance processes, real files and a real S3 server."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from documents import job_request, model_request
from lifecycle import JOB_TIMEOUT
from lifecycle import wait_for_end as wait_for
from models import ECHO_HANDLER, POISON_HANDLER, SLOW_HANDLER, echoed, tar_model, write_model
from s3servers import S3Server

from batchtransform import Session, Transformer
from batchtransform.logs import logs_dir
from batchtransform.service import Service

INPUTS = {
    "a.csv": "1,2\n3,4\n",
    "sub/b.csv": "5,6\r\n\r\n7,8",
    "sub/deeper/c.csv": "".join(f"{i},{i * i}\n" for i in range(500)),
}


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def write_inputs(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def outputs(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def session() -> Session:
    return Session()


def make_model(session: Session, tmp_path: Path, handler: str, name: str = "m1") -> None:
    archive = tar_model(write_model(tmp_path / f"{name}-src", handler), tmp_path / f"{name}.tar.gz")
    session.create_model(**model_request(name, archive.as_uri()))


def test_nested_local_inputs_with_two_instances(session: Session, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", dict(INPUTS))
    write_inputs(tmp_path / "in-sibling", {"z.csv": "not mine\n"})
    make_model(session, tmp_path, ECHO_HANDLER)
    request = job_request(
        input_uri=str(tmp_path / "in") + "/",
        output_path=(tmp_path / "out").as_uri(),
        TransformResources={"InstanceCount": 2},
        MaxPayloadInMB=1,
        MaxConcurrentTransforms=4,
        BatchStrategy="MultiRecord",
    )
    session.create_transform_job(**request)
    description = wait_for(session, "job-1")

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert outputs(tmp_path / "out") == {f"{k}.out": echoed(v) for k, v in INPUTS.items()}
    progress = description["Progress"]
    assert progress["ObjectsTotal"] == progress["ObjectsCompleted"] == 3
    assert progress["RecordsProcessed"] == 2 + 2 + 500
    assert description["CreationTime"] <= description["TransformStartTime"]
    assert description["TransformStartTime"] <= description["TransformEndTime"]
    data_logs = [p.read_text() for p in logs_dir("job-1").glob("*.data-log")]
    assert len(data_logs) == 2, "one data-log per instance"
    assert all(
        "MaxConcurrentTransforms=4, MaxPayloadInMB=1, BatchStrategy=MULTI_RECORD" in log
        for log in data_logs
    )


def test_nested_s3_inputs_on_seaweedfs(
    seaweed_s3: S3Server, s3_env: Callable[[S3Server], S3Server], tmp_path: Path
) -> None:
    server = s3_env(seaweed_s3)
    bucket = server.make_bucket()
    client = server.client()
    for key, text in {**INPUTS, "../in-sibling/z.csv": "not mine\n"}.items():
        client.put_object(Bucket=bucket, Key=os.path.normpath(f"in/{key}"), Body=text.encode())
    client.put_object(Bucket=bucket, Key="in/empty-folder/", Body=b"")
    archive = tar_model(write_model(tmp_path / "src", ECHO_HANDLER), tmp_path / "model.tar.gz")
    client.upload_file(str(archive), bucket, "models/model.tar.gz")
    session = Session()
    session.create_model(**model_request("m1", f"s3://{bucket}/models/model.tar.gz"))
    session.create_transform_job(
        **job_request(
            input_uri=f"s3://{bucket}/in/",
            output_path=f"s3://{bucket}/out",
            TransformResources={"InstanceCount": 2},
        )
    )
    description = wait_for(session, "job-1")

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    listed = client.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(f"out/{k}.out" for k in INPUTS)
    for key, text in INPUTS.items():
        body = client.get_object(Bucket=bucket, Key=f"out/{key}.out")["Body"].read()
        assert body == echoed(text)


def test_gzip_input_multi_member(session: Session, tmp_path: Path) -> None:
    text_a, text_b = "1,1\n2,2\n", "3,3\n"
    write_inputs(
        tmp_path / "in",
        {"x.csv.gz": gzip.compress(text_a.encode()) + gzip.compress(text_b.encode())},
    )
    make_model(session, tmp_path, ECHO_HANDLER)
    request = job_request(
        input_uri=str(tmp_path / "in"),
        output_path=str(tmp_path / "out"),
        TransformInput={"CompressionType": "Gzip"},
    )
    session.create_transform_job(**request)
    assert wait_for(session, "job-1")["TransformJobStatus"] == "Completed"
    assert outputs(tmp_path / "out") == {"x.csv.gz.out": echoed(text_a + text_b)}


def test_split_none_sends_each_file_whole(session: Session, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", {"doc.json": '{"a": 1}\n{"b": 2}\n'})
    make_model(session, tmp_path, ECHO_HANDLER)
    request = job_request(
        input_uri=str(tmp_path / "in"),
        output_path=str(tmp_path / "out"),
        TransformInput={"SplitType": None, "ContentType": "application/json"},
        TransformOutput={"AssembleWith": None},
    )
    session.create_transform_job(**request)
    assert wait_for(session, "job-1")["TransformJobStatus"] == "Completed"
    # one request with the whole body: its three "lines" (the last one empty) come back
    assert outputs(tmp_path / "out") == {"doc.json.out": b'out:{"a": 1}\nout:{"b": 2}\nout:\n'}


def test_a_failing_file_leaves_no_output_and_fails_the_job(
    session: Session, tmp_path: Path
) -> None:
    write_inputs(
        tmp_path / "in", {"good.csv": "1\n2\n", "bad.csv": "1\npoison\n3\n", "also-good.csv": "3\n"}
    )
    make_model(session, tmp_path, POISON_HANDLER)
    request = job_request(
        input_uri=str(tmp_path / "in") + "/",
        output_path=str(tmp_path / "out"),
        BatchStrategy="SingleRecord",
        ModelClientConfig={"InvocationsMaxRetries": 0},
        TransformResources={"InstanceCount": 2},
    )
    session.create_transform_job(**request)
    description = wait_for(session, "job-1")

    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert "1 of 3 input objects failed" in reason
    assert "bad.csv" in reason and "poisoned record" in reason and "record 2" in reason
    assert outputs(tmp_path / "out") == {
        "good.csv.out": b"out:1\nout:2\n",
        "also-good.csv.out": b"out:3\n",
    }
    assert description["Progress"]["FailedObjects"] == [str(tmp_path / "in" / "bad.csv")]
    data_log = "".join(p.read_text() for p in logs_dir("job-1").glob("*.data-log"))
    assert "bad.csv: ModelError" in data_log or "bad.csv: ValueError" in data_log


def test_an_oversized_record_names_its_file_and_number(session: Session, tmp_path: Path) -> None:
    big = "9" * (1024 * 1024 + 1)
    write_inputs(tmp_path / "in", {"big.csv": f"1\n2\n{big}\n4\n"})
    make_model(session, tmp_path, ECHO_HANDLER)
    request = job_request(
        input_uri=str(tmp_path / "in"), output_path=str(tmp_path / "out"), MaxPayloadInMB=1
    )
    session.create_transform_job(**request)
    description = wait_for(session, "job-1")

    assert description["TransformJobStatus"] == "Failed"
    assert "big.csv" in description["FailureReason"]
    assert "record 3" in description["FailureReason"]
    assert not (tmp_path / "out").exists() or outputs(tmp_path / "out") == {}


def test_a_model_that_does_not_load_fails_the_job_with_its_error(
    session: Session, tmp_path: Path
) -> None:
    write_inputs(tmp_path / "in", {"a.csv": "1\n"})
    make_model(
        session,
        tmp_path,
        "def model_fn(model_dir):\n    raise RuntimeError('weights are corrupt')\n",
    )
    session.create_transform_job(
        **job_request(input_uri=str(tmp_path / "in"), output_path=str(tmp_path / "out"))
    )
    description = wait_for(session, "job-1")
    assert description["TransformJobStatus"] == "Failed"
    assert "weights are corrupt" in description["FailureReason"]


def test_no_input_objects_fails_the_job(session: Session, tmp_path: Path) -> None:
    make_model(session, tmp_path, ECHO_HANDLER)
    session.create_transform_job(
        **job_request(input_uri=str(tmp_path / "nothing/"), output_path=str(tmp_path / "out"))
    )
    description = wait_for(session, "job-1")
    assert description["TransformJobStatus"] == "Failed"
    assert "no input objects" in description["FailureReason"]


def slow_job(session: Session, tmp_path: Path, instances: int) -> None:
    """Two files of 40 records each, one record a request, each request 0.2 s."""
    files = {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(40)) for i in range(2)}
    write_inputs(tmp_path / "in", dict(files))
    make_model(session, tmp_path, SLOW_HANDLER)
    request = job_request(
        input_uri=str(tmp_path / "in") + "/",
        output_path=str(tmp_path / "out"),
        BatchStrategy="SingleRecord",
        TransformResources={"InstanceCount": instances},
    )
    session.create_transform_job(**request)


def records_done(session: Session) -> int:
    return int(
        session.describe_transform_job(TransformJobName="job-1")["Progress"]["RecordsProcessed"]
    )


def instance_pids(controller_pid: int) -> list[int]:
    """The controller's instance processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{controller_pid}/task/{controller_pid}/children").read_text().split()
    found = []
    for pid in map(int, children):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command:
            found.append(pid)
    return found


def test_stop_mid_job_leaves_no_partial_output(session: Session, tmp_path: Path) -> None:
    slow_job(session, tmp_path, instances=2)
    wait_until(lambda: records_done(session) > 0)
    pid = session.service.store.get_job("job-1").controller_pid  # type: ignore[union-attr]
    assert pid and instance_pids(pid)
    session.stop_transform_job(TransformJobName="job-1")
    assert session.describe_transform_job(TransformJobName="job-1")["TransformJobStatus"] in (
        "Stopping",
        "Stopped",
    )

    description = wait_for(session, "job-1", timeout=30)
    assert description["TransformJobStatus"] == "Stopped"
    assert "TransformEndTime" in description
    assert not list((tmp_path / "out").glob("*")), "a stopped file leaves nothing, not even a temp"
    wait_until(lambda: not Path(f"/proc/{pid}").exists() or not instance_pids(pid), timeout=15)


def test_a_killed_instance_does_not_hang_the_job(session: Session, tmp_path: Path) -> None:
    slow_job(session, tmp_path, instances=2)
    wait_until(lambda: records_done(session) > 0)
    pid = session.service.store.get_job("job-1").controller_pid  # type: ignore[union-attr]
    victim = instance_pids(pid)[0]
    os.kill(victim, signal.SIGKILL)

    description = wait_for(session, "job-1")
    # the file it held is tried again on another instance, so the job still completes whole
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    for i in range(2):
        expected = "".join(f"out:{i}-{n}\n" for n in range(40)).encode()
        assert (tmp_path / "out" / f"f{i}.csv.out").read_bytes() == expected
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".partial")]


def test_transformer_waits_and_streams_logs(
    session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_inputs(tmp_path / "in", {"a.csv": "1,2\n"})
    make_model(session, tmp_path, ECHO_HANDLER, name="cancer")
    transformer = Transformer(
        model_name="cancer",
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=(tmp_path / "out").as_uri(),
        strategy="MultiRecord",
        assemble_with="Line",
        accept="text/csv",
        max_payload=6,
        max_concurrent_transforms=4,
        sagemaker_session=session,
    )
    transformer.transform(
        (tmp_path / "in").as_uri(), content_type="text/csv", split_type="Line", wait=True, logs=True
    )

    printed = capsys.readouterr().out
    assert "MaxConcurrentTransforms=4, MaxPayloadInMB=6, BatchStrategy=MULTI_RECORD" in printed
    assert (tmp_path / "out" / "a.csv.out").read_bytes() == b"out:1,2\n"
    attached = Transformer.attach(transformer.latest_transform_job or "", sagemaker_session=session)
    assert attached.describe()["TransformJobStatus"] == "Completed"
    assert attached.max_concurrent_transforms == 4


def test_output_kms_key_encrypts_the_outputs(
    moto_s3: S3Server, s3_env: Callable[[S3Server], S3Server], tmp_path: Path
) -> None:
    server = s3_env(moto_s3)
    bucket = server.make_bucket()
    client = server.client()
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=b"1\n2\n")
    session = Session()
    make_model(session, tmp_path, ECHO_HANDLER)
    key = "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    request = job_request(
        input_uri=f"s3://{bucket}/in/",
        output_path=f"s3://{bucket}/out/",
        TransformOutput={"KmsKeyId": key},
    )
    session.create_transform_job(**request)
    assert wait_for(session, "job-1")["TransformJobStatus"] == "Completed"

    head = client.head_object(Bucket=bucket, Key="out/a.csv.out")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key)


# The instance leaves without the interpreter's teardown; a model's exit handlers still run.
EXIT_HANDLER = (
    ECHO_HANDLER
    + """
import atexit
import os

def model_fn(model_dir):
    mark = os.environ["EXIT_MARK"]
    atexit.register(lambda: open(mark, "a").write(f"{os.getpid()}\\n"))
    return "ok"
"""
)


def test_an_instance_runs_its_models_exit_handlers(session: Session, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", {"a.csv": "1\n", "b.csv": "2\n"})
    make_model(session, tmp_path, EXIT_HANDLER)
    mark = tmp_path / "exited"
    request = job_request(
        input_uri=str(tmp_path / "in") + "/",
        output_path=str(tmp_path / "out"),
        TransformResources={"InstanceCount": 2},
        Environment={"EXIT_MARK": str(mark)},
    )
    session.create_transform_job(**request)

    description = wait_for(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert len(set(mark.read_text().split())) == 2, "each instance ran its handler once"


# Reports the size of numpy's BLAS thread pool, fixed when numpy loaded in the instance.
THREADS_HANDLER = """
def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    from threadpoolctl import threadpool_info

    pools = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return f"{pools}\\n"
"""


def test_thread_counts_in_the_job_environment_reach_the_numeric_libraries(
    session: Session, tmp_path: Path
) -> None:
    # Without the job's setting, one instance gets every core (two or more on a test machine).
    write_inputs(tmp_path / "in", {"a.csv": "1\n"})
    make_model(session, tmp_path, THREADS_HANDLER)
    single = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    request = job_request(
        input_uri=str(tmp_path / "in") + "/", output_path=str(tmp_path / "out"), Environment=single
    )
    session.create_transform_job(**request)

    description = wait_for(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert (tmp_path / "out" / "a.csv.out").read_text() == "[1]\n"


ENVIRONMENT_HANDLER = """
import os

def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    names = ("GLIBC_TUNABLES", "OPENBLAS_THREAD_TIMEOUT")
    return "|".join(os.environ.get(name, "unset") for name in names) + "\\n"
"""


@pytest.mark.parametrize("users_own", [None, "glibc.malloc.arena_max=2"])
def test_instances_start_with_malloc_and_blas_settings(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, users_own: str | None
) -> None:
    if users_own is None:
        monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    else:
        monkeypatch.setenv("GLIBC_TUNABLES", users_own)
    write_inputs(tmp_path / "in", {"a.csv": "1\n"})
    make_model(session, tmp_path, ENVIRONMENT_HANDLER)
    request = job_request(input_uri=str(tmp_path / "in") + "/", output_path=str(tmp_path / "out"))
    session.create_transform_job(**request)

    description = wait_for(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    seen, spin = (tmp_path / "out" / "a.csv.out").read_text().strip().split("|")
    assert spin == "20", "idle OpenBLAS threads sleep after 2**20 cycles, not 2**28"
    if users_own is None:
        assert "glibc.malloc.mmap_threshold=" in seen and "trim_threshold=" in seen
    else:
        assert seen == users_own


def test_a_controller_run_by_hand_reads_the_job_from_the_store(tmp_path: Path) -> None:
    # The service hands its record to the controller it launches; run by hand (to debug, or
    # after a launcher failed), the controller reads the job from the store instead.
    session = Session(service=Service(launcher=lambda record: None))
    write_inputs(tmp_path / "in", {"a.csv": "1\n2\n"})
    make_model(session, tmp_path, ECHO_HANDLER)
    request = job_request(input_uri=str(tmp_path / "in") + "/", output_path=str(tmp_path / "out"))
    session.create_transform_job(**request)
    command = [sys.executable, "-m", "batchtransform.controller", "job-1"]
    subprocess.run(command, check=True, timeout=JOB_TIMEOUT)

    description = session.describe_transform_job(TransformJobName="job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert (tmp_path / "out" / "a.csv.out").read_bytes() == echoed("1\n2\n")
