"""Model servers that die mid-job are restarted, and never charge innocent files.

A server that exits is started again (the restart and its cause in the data-log) and the
request is retried; one that cannot be brought back retires its instance, whose item goes
to a healthy one.
"""

from __future__ import annotations

from pathlib import Path

from faultkit import assert_no_process_left
from lifecycle import wait_for_end
from models import echoed
from runtimes.model_server import write_launcher
from test_end_to_end import outputs
from test_instance_death import assert_counts, controller_log, start_job

from batchtransform import Session
from batchtransform.logs import logs_dir


def server_model(session: Session, tmp_path: Path, environment: dict[str, str]) -> None:
    image = f"process://{write_launcher(tmp_path)}"
    session.create_model(
        ModelName="m1", PrimaryContainer={"Image": image, "Environment": environment}
    )


def data_log() -> str:
    return "".join(p.read_text() for p in sorted(logs_dir("job-1").glob("*data-log")))


def test_a_server_that_exits_on_its_third_request_is_restarted_and_no_file_fails(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    """One instance, three files of two records, one request each: the server dies on the
    3rd and (once restarted) every 3rd request after; every file still completes."""
    files = {"a.csv": "1\n2\n", "b.csv": "3\n4\n", "c.csv": "5\n6\n"}
    server_model(session, tmp_path, {"MODEL_SERVER_MODE": "crash-at"})
    start_job(session, tmp_path, files)

    description = wait_for_end(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert_counts(description, 3, 0, tmp_path / "out")
    assert outputs(tmp_path / "out") == {f"{k}.out": echoed(v) for k, v in files.items()}
    log = data_log()
    assert log.count("restarting it (attempt 1 of 3)") == 2, log
    assert log.count("The model was restarted") == 2
    assert "exited with code 1" in log, "the cause is logged with the restart"
    assert_no_process_left(batchtransform_home)


def test_concurrent_requests_to_a_server_that_exits_share_one_restart(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    """Four requests in flight when the server exits: each is retried on the restarted
    server, and no file fails."""
    files = {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(12)) for i in range(2)}
    server_model(session, tmp_path, {"MODEL_SERVER_MODE": "crash-at", "MODEL_SERVER_CRASH_AT": "5"})
    start_job(session, tmp_path, files, MaxConcurrentTransforms=4)

    description = wait_for_end(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert_counts(description, 2, 0, tmp_path / "out")
    assert outputs(tmp_path / "out") == {f"{k}.out": echoed(v) for k, v in files.items()}
    log = data_log()
    restarts = log.count("The model was restarted")
    assert restarts >= 1 and log.count("restarting it (attempt 1 of 3)") == restarts, log
    assert_no_process_left(batchtransform_home)


def test_a_server_that_dies_for_good_retires_its_instance_and_the_job_completes(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    """Two instances, eight files; the first server to reach its 3rd request dies and cannot
    start again in its folder. Its instance is replaced and its file runs elsewhere."""
    files = {f"f{i}.csv": f"{i}-1\n{i}-2\n" for i in range(8)}
    server_model(
        session,
        tmp_path,
        {"MODEL_SERVER_MODE": "die-for-good", "MODEL_SERVER_DEATH_FILE": str(tmp_path / "died")},
    )
    start_job(session, tmp_path, files, TransformResources={"InstanceCount": 2})

    description = wait_for_end(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert_counts(description, 8, 0, tmp_path / "out")
    assert outputs(tmp_path / "out") == {f"{k}.out": echoed(v) for k, v in files.items()}
    assert (tmp_path / "died").exists()
    assert data_log().count("The model did not restart") == 3
    assert controller_log().count("could not be restarted") == 1
    assert_no_process_left(batchtransform_home)
