"""Resume: a Failed or Stopped job (a killed controller's included) runs only the work
without a committed output, leaves committed outputs untouched and redoes changed ones."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from documents import job_request
from faults.faultkit import processes_with_home
from lifecycle import wait_for_end
from models import echoed
from s3servers import S3Server
from test_end_to_end import make_model, wait_until, write_inputs

from batchtransform import Session, cli
from batchtransform.api import ApiServer, ServerConfig
from batchtransform.assembly import sweep_kept_parts
from batchtransform.errors import ConflictError
from batchtransform.service import Service

# Fails any payload holding "poison" while the file FLAG names exists; notes each payload's
# first line in the JOURNAL file, so a test can tell which files a run worked on.
FLAKY_HANDLER = """
import os, time

def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    text = body.decode() if isinstance(body, bytes) else body
    with open(os.environ["JOURNAL"], "a") as journal:
        journal.write(text.split("\\n")[0] + "\\n")
    time.sleep(float(os.environ.get("DELAY", "0")))
    if "poison" in text and os.path.exists(os.environ["FLAG"]):
        raise ValueError("poisoned record")
    return "".join(f"out:{line}\\n" for line in text.split("\\n"))
"""

FILES = {
    "a.csv": "a-1\na-2\n",
    "b.csv": "b-1\npoison\n",
    "c.csv": "c-1\nc-2\nc-3\n",
}


@pytest.fixture
def session() -> Session:
    return Session()


def start_job(session: Session, tmp_path: Path, files: dict[str, str], **environment: str) -> None:
    write_inputs(tmp_path / "in", dict(files))
    make_model(session, tmp_path, FLAKY_HANDLER)
    session.create_transform_job(
        **job_request(
            input_uri=str(tmp_path / "in") + "/",
            output_path=str(tmp_path / "out"),
            ModelClientConfig={"InvocationsMaxRetries": 0},
            Environment={
                "JOURNAL": str(tmp_path / "journal"),
                "FLAG": str(tmp_path / "flag"),
                **environment,
            },
        )
    )


def journal(tmp_path: Path) -> list[str]:
    path = tmp_path / "journal"
    return path.read_text().splitlines() if path.exists() else []


def stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.out")}


def test_resume_after_a_failure_redoes_only_failed_and_changed_outputs(
    session: Session, tmp_path: Path
) -> None:
    (tmp_path / "flag").touch()
    start_job(session, tmp_path, FILES)
    first = wait_for_end(session, "job-1")
    assert first["TransformJobStatus"] == "Failed"
    out = tmp_path / "out"
    assert sorted(stamps(out)) == ["a.csv.out", "c.csv.out"]

    (tmp_path / "flag").unlink()  # the model is mended
    (out / "c.csv.out").write_bytes(b"changed by someone\n")  # a committed output changed
    kept = stamps(out)["a.csv.out"]
    (tmp_path / "journal").unlink()
    time.sleep(0.01)

    with ApiServer(ServerConfig(port=0, no_auth=True), Service()) as server:
        remote = Session(endpoint_url=server.endpoint_url)
        answer = remote.resume_transform_job(TransformJobName="job-1")
        assert answer["TransformJobArn"] == first["TransformJobArn"]
        second = wait_for_end(remote, "job-1")

    assert second["TransformJobStatus"] == "Completed", second.get("FailureReason")
    assert "FailureReason" not in second
    for name, text in FILES.items():
        assert (out / f"{name}.out").read_bytes() == echoed(text)
    assert stamps(out)["a.csv.out"] == kept, "a committed output is left untouched"
    assert sorted(journal(tmp_path)) == ["b-1", "c-1"], "only b (failed) and c (changed) ran"
    progress = second["Progress"]
    assert progress["ObjectsCompleted"] == progress["ObjectsTotal"] == 3
    assert progress["ObjectsFailed"] == 0
    assert progress["RecordsProcessed"] == 7, "the counts cover both runs"
    assert progress["Resumes"] == 1
    assert second["TransformStartTime"] == first["TransformStartTime"]
    assert second["TransformEndTime"] > first["TransformEndTime"]

    with pytest.raises(ConflictError, match="it is Completed"):
        session.resume_transform_job(TransformJobName="job-1")
    code = cli.main(["resume-transform-job", "--transform-job-name", "job-1"])
    assert code == cli.EXIT_SERVICE


def slow_files() -> dict[str, str]:
    return {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(6)) for i in range(4)}


@pytest.fixture
def slow(session: Session, tmp_path: Path) -> Iterator[None]:
    """Four files of six records, one record a request, each request 0.15 s."""
    write_inputs(tmp_path / "in", slow_files())
    make_model(session, tmp_path, FLAKY_HANDLER)
    session.create_transform_job(
        **job_request(
            input_uri=str(tmp_path / "in") + "/",
            output_path=str(tmp_path / "out"),
            BatchStrategy="SingleRecord",
            Environment={
                "JOURNAL": str(tmp_path / "journal"),
                "FLAG": str(tmp_path / "flag"),
                "DELAY": "0.15",
            },
        )
    )
    yield


def completed_objects(session: Session) -> int:
    progress = session.describe_transform_job(TransformJobName="job-1")["Progress"]
    return int(progress["ObjectsCompleted"])


def check_resumed(session: Session, tmp_path: Path, before: dict[str, tuple[int, int]]) -> None:
    (tmp_path / "journal").unlink()
    session.resume_transform_job(TransformJobName="job-1")
    with pytest.raises(ConflictError, match="it is InProgress"):
        session.resume_transform_job(TransformJobName="job-1")
    described = wait_for_end(session, "job-1")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    out = tmp_path / "out"
    for name, text in slow_files().items():
        assert (out / f"{name}.out").read_bytes() == echoed(text)
    after = stamps(out)
    assert all(after[name] == stamp for name, stamp in before.items())
    files_run = {line.split("-")[0] for line in journal(tmp_path)}
    assert files_run.isdisjoint(name[1] for name in before), "committed files did not run"
    assert described["Progress"]["RecordsProcessed"] == 24
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_resume_after_a_stop(session: Session, tmp_path: Path, slow: None) -> None:
    wait_until(lambda: completed_objects(session) >= 1)
    session.stop_transform_job(TransformJobName="job-1")
    assert wait_for_end(session, "job-1")["TransformJobStatus"] == "Stopped"
    before = stamps(tmp_path / "out")
    assert 1 <= len(before) < 4, before
    check_resumed(session, tmp_path, before)


def test_resume_after_a_killed_controller(
    session: Session, tmp_path: Path, slow: None, batchtransform_home: Path
) -> None:
    store = Service().store
    wait_until(lambda: bool(store.list_commits("job-1")))  # saved with the progress
    record = store.get_job("job-1")
    assert record is not None and record.controller_pid
    os.kill(record.controller_pid, signal.SIGKILL)
    wait_until(lambda: not processes_with_home(batchtransform_home), timeout=30)
    described = session.describe_transform_job(TransformJobName="job-1")
    assert described["TransformJobStatus"] == "Failed"
    # what a commit was recorded for must stay; an output written after the last progress
    # save (no commit recorded) is redone, and may change
    committed = {Path(c.output_url).name for c in store.list_commits("job-1")}
    before = {name: stamp for name, stamp in stamps(tmp_path / "out").items() if name in committed}
    assert before
    check_resumed(session, tmp_path, before)


def test_a_job_whose_model_was_deleted_is_not_resumed(session: Session, tmp_path: Path) -> None:
    (tmp_path / "flag").touch()
    start_job(session, tmp_path, FILES)
    assert wait_for_end(session, "job-1")["TransformJobStatus"] == "Failed"
    session.delete_model(ModelName="m1")
    with pytest.raises(ConflictError, match=r'its model ".*model/m1" was deleted'):
        session.resume_transform_job(TransformJobName="job-1")
    assert session.describe_transform_job(TransformJobName="job-1")["TransformJobStatus"] == (
        "Failed"
    )


def test_resume_on_s3_redoes_objects_with_failed_records(
    moto_s3: S3Server, s3_env: Callable[[S3Server], S3Server], tmp_path: Path
) -> None:
    """Record errors and resume together on S3: a job past its failed-record threshold is
    resumed once the model is mended; the clean object's output (its ETag recorded) stays,
    the object with a failed record runs again, and its stale errors file goes."""
    server = s3_env(moto_s3)
    bucket = server.make_bucket()
    client = server.client()
    files = {"a.csv": "a-1\na-2\n", "b.csv": "b-1\npoison\nb-3\n"}
    for name, text in files.items():
        client.put_object(Bucket=bucket, Key=f"in/{name}", Body=text.encode())
    (tmp_path / "flag").touch()
    session = Session()
    make_model(session, tmp_path, FLAKY_HANDLER)
    session.create_transform_job(
        **job_request(
            input_uri=f"s3://{bucket}/in/",
            output_path=f"s3://{bucket}/out",
            ModelClientConfig={"InvocationsMaxRetries": 0},
            Environment={
                "JOURNAL": str(tmp_path / "journal"),
                "FLAG": str(tmp_path / "flag"),
                "BATCHTRANSFORM_MAX_FAILED_RECORDS": "0",
            },
        )
    )
    first = wait_for_end(session, "job-1")
    assert first["TransformJobStatus"] == "Failed"
    assert "1 records failed" in str(first["FailureReason"])
    errors_key = "out/_errors/b.csv.errors.jsonl"
    errors = client.get_object(Bucket=bucket, Key=errors_key)["Body"].read().decode()
    assert [json.loads(line)["record"] for line in errors.splitlines()] == [2]
    kept = client.head_object(Bucket=bucket, Key="out/a.csv.out")

    (tmp_path / "flag").unlink()
    (tmp_path / "journal").unlink()
    session.resume_transform_job(TransformJobName="job-1")
    second = wait_for_end(session, "job-1")

    assert second["TransformJobStatus"] == "Completed", second.get("FailureReason")
    for name, text in files.items():
        body = client.get_object(Bucket=bucket, Key=f"out/{name}.out")["Body"].read()
        assert body == echoed(text)
    again = client.head_object(Bucket=bucket, Key="out/a.csv.out")
    assert (again["ETag"], again["LastModified"]) == (kept["ETag"], kept["LastModified"])
    assert journal(tmp_path) == ["b-1"], "only the object with a failed record ran again"
    listed = client.list_objects_v2(Bucket=bucket, Prefix="out/_errors/").get("Contents", [])
    assert listed == [], "the stale errors file was removed"
    assert second["Progress"]["RecordsFailed"] == 0


RANGED = "".join(f"line {n}\n" for n in range(300)).replace("line 250\n", "poison\n")


def start_ranged_job(
    session: Session, tmp_path: Path, input_uri: str, output_path: str
) -> list[str]:
    """One object in ranges of 524 bytes (five of them), one request a range; the last,
    holding the poisoned record, fails while the flag is there. The first record of each
    range, in order."""
    (tmp_path / "flag").touch()
    make_model(session, tmp_path, FLAKY_HANDLER)
    session.create_transform_job(
        **job_request(
            input_uri=input_uri,
            output_path=output_path,
            ModelClientConfig={"InvocationsMaxRetries": 0},
            Environment={
                "JOURNAL": str(tmp_path / "journal"),
                "FLAG": str(tmp_path / "flag"),
                "BATCHTRANSFORM_RANGE_SIZE_MB": "0.0005",
            },
        )
    )
    first = wait_for_end(session, "job-1")
    assert first["TransformJobStatus"] == "Failed"
    assert "big.csv (bytes " in str(first["FailureReason"])
    (tmp_path / "flag").unlink()  # the model is mended
    firsts = sorted(ranges_run(tmp_path), key=lambda line: int(line.split()[1]))
    assert len(firsts) == 5 and int(firsts[-1].split()[1]) < 250
    return firsts


def ranges_run(tmp_path: Path) -> list[str]:
    """The first record of each range the model was sent since the last call (a range is
    one request here)."""
    ran = journal(tmp_path)
    (tmp_path / "journal").unlink(missing_ok=True)
    return sorted(ran)


def test_a_failed_ranged_job_resumes_only_its_missing_and_changed_ranges(
    session: Session, tmp_path: Path
) -> None:
    write_inputs(tmp_path / "in", {"big.csv": RANGED})
    out = tmp_path / "out"
    firsts = start_ranged_job(session, tmp_path, str(tmp_path / "in") + "/", str(out))
    kept = sorted(out.glob(".big.csv.out.part-*"))
    assert len(kept) == 4 and not (out / "big.csv.out").exists()
    assert not list(out.glob("*.partial"))
    kept[0].write_bytes(b"changed by someone\n")  # a kept part changed: its range is redone

    session.resume_transform_job(TransformJobName="job-1")
    second = wait_for_end(session, "job-1")

    assert second["TransformJobStatus"] == "Completed", second.get("FailureReason")
    assert (out / "big.csv.out").read_bytes() == echoed(RANGED)  # as one range writes it
    assert ranges_run(tmp_path) == sorted([firsts[0], firsts[-1]]), "the other three were kept"
    assert sorted(p.name for p in out.iterdir()) == ["big.csv.out"], "no part is left"
    progress = second["Progress"]
    assert progress["RecordsProcessed"] == 300, "kept ranges count their first run's records"
    assert progress["ObjectsCompleted"] == 1 and progress["ObjectsFailed"] == 0


def test_kept_parts_are_swept_once_their_time_is_up(session: Session, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", {"big.csv": RANGED})
    out = tmp_path / "out"
    start_ranged_job(session, tmp_path, str(tmp_path / "in") + "/", str(out))
    assert len(list(out.glob(".big.csv.out.part-*"))) == 4
    store = Service().store
    assert sweep_kept_parts(store) == [], "kept for a day by default"
    assert len(list(out.glob(".big.csv.out.part-*"))) == 4

    assert sweep_kept_parts(store, now=time.time() + 86_401) == ["job-1"]
    assert list(out.iterdir()) == []
    assert sweep_kept_parts(store, now=time.time() + 86_401) == [], "swept once"
    ranges_run(tmp_path)
    session.resume_transform_job(TransformJobName="job-1")  # every range runs again
    assert wait_for_end(session, "job-1")["TransformJobStatus"] == "Completed"
    assert (out / "big.csv.out").read_bytes() == echoed(RANGED)
    assert len(ranges_run(tmp_path)) == 5


def test_a_stopped_ranged_job_resumes_only_its_missing_ranges(
    session: Session, tmp_path: Path
) -> None:
    content = "".join(f"{n:04d}\n" for n in range(200))
    write_inputs(tmp_path / "in", {"big.csv": content})
    make_model(session, tmp_path, FLAKY_HANDLER)
    session.create_transform_job(
        **job_request(
            input_uri=str(tmp_path / "in") + "/",
            output_path=str(tmp_path / "out"),
            BatchStrategy="SingleRecord",
            TransformResources={"InstanceCount": 2},
            Environment={
                "JOURNAL": str(tmp_path / "journal"),
                "FLAG": str(tmp_path / "flag"),
                "DELAY": "0.05",
                "BATCHTRANSFORM_RANGE_SIZE_MB": "0.0002",  # 20 ranges of 10 records
            },
        )
    )
    out = tmp_path / "out"
    wait_until(lambda: len(list(out.glob(".big.csv.out.part-*"))) >= 3)
    session.stop_transform_job(TransformJobName="job-1")
    assert wait_for_end(session, "job-1")["TransformJobStatus"] == "Stopped"
    kept = sorted(out.glob(".big.csv.out.part-*"))
    assert 3 <= len(kept) < 20 and not list(out.glob("*.partial"))
    done = {line.removeprefix("out:") for part in kept for line in part.read_text().split()}
    ranges_run(tmp_path)

    session.resume_transform_job(TransformJobName="job-1")
    assert wait_for_end(session, "job-1")["TransformJobStatus"] == "Completed"
    assert (out / "big.csv.out").read_bytes() == echoed(content)
    ran = ranges_run(tmp_path)  # one record a request: every record sent
    assert set(ran).isdisjoint(done), "the records of kept parts were not sent again"
    assert set(ran) | done == {f"{n:04d}" for n in range(200)}
    assert sorted(p.name for p in out.iterdir()) == ["big.csv.out"]


def test_a_failed_ranged_job_on_s3_resumes_only_its_missing_and_changed_ranges(
    moto_s3: S3Server, s3_env: Callable[[S3Server], S3Server], tmp_path: Path
) -> None:
    server = s3_env(moto_s3)
    bucket = server.make_bucket()
    client = server.client()
    client.put_object(Bucket=bucket, Key="in/big.csv", Body=RANGED.encode())
    session = Session()
    firsts = start_ranged_job(session, tmp_path, f"s3://{bucket}/in/", f"s3://{bucket}/out")
    listed = client.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents", [])
    kept = sorted(item["Key"] for item in listed)
    assert kept == [f"out/big.csv.out.part-{n:05d}-of-00005" for n in range(1, 5)]
    client.put_object(Bucket=bucket, Key=kept[1], Body=b"changed by someone\n")

    session.resume_transform_job(TransformJobName="job-1")
    second = wait_for_end(session, "job-1")

    assert second["TransformJobStatus"] == "Completed", second.get("FailureReason")
    body = client.get_object(Bucket=bucket, Key="out/big.csv.out")["Body"].read()
    assert body == echoed(RANGED)
    assert ranges_run(tmp_path) == sorted([firsts[1], firsts[-1]]), "the others were kept"
    listed = client.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents", [])
    assert [item["Key"] for item in listed] == ["out/big.csv.out"]
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert second["Progress"]["RecordsProcessed"] == 300
