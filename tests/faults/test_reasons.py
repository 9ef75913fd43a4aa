"""FailureReason is one line that starts as SageMaker's do; tracebacks go to the instance
log; an instance stopped because another failed says so in its data-log."""

from __future__ import annotations

from pathlib import Path

from documents import job_request
from faultkit import assert_no_process_left
from lifecycle import wait_for_end
from test_end_to_end import make_model, write_inputs

from batchtransform import Session
from batchtransform.logs import logs_dir

# Instance 1's model does not load, once instance 2 has begun to start; instance 2's takes
# its time, so it is still starting when the job gives up.
FAILS_ON_INSTANCE_1 = """
import pathlib, time

def model_fn(model_dir):
    if "instance-1" not in str(model_dir):
        time.sleep(60)
    sibling = pathlib.Path(model_dir).parent.parent / "instance-2" / "model"
    for _ in range(600):
        if sibling.exists():
            break
        time.sleep(0.05)
    raise ValueError("the weights are corrupt")
"""


def instance_log(suffix: str) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(logs_dir("job-1").glob(f"*{suffix}"))}


def test_a_handler_syntax_error_is_one_line_and_its_traceback_is_in_the_log(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    write_inputs(tmp_path / "in", {"a.csv": "1\n"})
    make_model(session, tmp_path, "def model_fn(model_dir)\n    return 1\n")
    session.create_transform_job(
        **job_request(input_uri=str(tmp_path / "in"), output_path=str(tmp_path / "out"))
    )
    description = wait_for_end(session, "job-1")

    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert reason.startswith("ClientError: ") and "\n" not in reason, reason
    assert "SyntaxError" in reason and "Traceback" not in reason
    [model_log] = instance_log(".log").values()
    assert "Traceback (most recent call last)" in model_log and "SyntaxError" in model_log
    assert_no_process_left(batchtransform_home)


def test_an_instance_stopped_for_anothers_failure_does_not_log_a_start_failure(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    write_inputs(tmp_path / "in", {"a.csv": "1\n", "b.csv": "2\n"})
    make_model(session, tmp_path, FAILS_ON_INSTANCE_1)
    session.create_transform_job(
        **job_request(
            input_uri=str(tmp_path / "in") + "/",
            output_path=str(tmp_path / "out"),
            TransformResources={"InstanceCount": 2},
        )
    )
    description = wait_for_end(session, "job-1")

    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert reason.startswith("ClientError: ") and "\n" not in reason, reason
    assert "the weights are corrupt" in reason
    data_logs = instance_log(".data-log")
    assert len(data_logs) == 2
    failed = [text for text in data_logs.values() if "the weights are corrupt" in text]
    stopped = [text for text in data_logs.values() if "the weights are corrupt" not in text]
    assert len(failed) == 1 and "Instance failed to start" in failed[0]
    assert "Instance stopped before it was ready" in stopped[0]
    assert "Instance failed to start" not in stopped[0]
    assert_no_process_left(batchtransform_home)
