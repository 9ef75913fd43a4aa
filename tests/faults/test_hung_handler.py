"""An in-process handler that hangs is bounded by InvocationsTimeoutInSeconds, as a model
server is: the stuck instance is ended, a new one starts the model again, and the item is
retried as ModelClientConfig allows. A hung handler never hangs the job."""

from __future__ import annotations

from pathlib import Path

from faultkit import assert_no_process_left
from lifecycle import wait_for_end
from models import echoed
from test_end_to_end import make_model, outputs
from test_instance_death import assert_counts, controller_log, start_job

from batchtransform import Session
from batchtransform.logs import logs_dir


def hanging_handler(marker: Path | None) -> str:
    """Echoes. Hangs on a body containing ``hang``; with ``marker``, only the first call of
    the whole job hangs (whatever its body)."""
    once = marker is not None
    return f"""
import os
import time

def model_fn(model_dir):
    return "ok"

def _first_call():
    try:
        os.close(os.open({str(marker)!r}, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False

def transform_fn(model, body, content_type, accept):
    if ({once} and _first_call()) or (not {once} and "hang" in body):
        time.sleep(3600)
    return "".join(f"out:{{line}}\\n" for line in body.split("\\n"))
"""


def test_a_handler_that_hangs_once_is_timed_out_and_the_job_completes(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    files = {"a.csv": "1\n2\n", "b.csv": "3\n"}
    make_model(session, tmp_path, hanging_handler(tmp_path / "hung"))
    start_job(session, tmp_path, files, ModelClientConfig={"InvocationsTimeoutInSeconds": 2})

    description = wait_for_end(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert_counts(description, 2, 0, tmp_path / "out")
    assert outputs(tmp_path / "out") == {f"{k}.out": echoed(v) for k, v in files.items()}
    assert controller_log().count("no response from the model within 2 s") == 1
    model_log = "".join(p.read_text() for p in logs_dir("job-1").glob("*[0-9].log"))
    assert "The call was stuck at" in model_log and "time.sleep(3600)" in model_log
    assert_no_process_left(batchtransform_home)


def test_a_record_that_always_hangs_fails_its_file_after_the_retries(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    files = {"good.csv": "1\n2\n", "bad.csv": "3\nhang\n"}
    make_model(session, tmp_path, hanging_handler(None))
    start_job(
        session,
        tmp_path,
        files,
        ModelClientConfig={"InvocationsTimeoutInSeconds": 1, "InvocationsMaxRetries": 1},
    )

    description = wait_for_end(session, "job-1")
    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert "bad.csv" in reason and "within 1 s" in reason and "tried 2 times" in reason, reason
    assert_counts(description, 1, 1, tmp_path / "out")
    assert outputs(tmp_path / "out") == {"good.csv.out": echoed(files["good.csv"])}
    assert_no_process_left(batchtransform_home)
