"""Instances that die: killed from outside, or taken down by their own handler.

Each death is handled once (one INSTANCE_LOST line, one replacement), its item runs again
elsewhere, and the counts stay exact: ObjectsCompleted + ObjectsFailed never exceeds
ObjectsTotal, and ObjectsCompleted is the number of outputs that exist.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from documents import job_request
from faultkit import assert_no_process_left, wait_until
from lifecycle import alive, wait_for_end
from models import SLOW_HANDLER, echoed
from runtimes.model_server import write_launcher
from test_end_to_end import instance_pids, make_model, outputs, records_done, write_inputs

from batchtransform import Session, config
from batchtransform.executors.base import MAX_ATTEMPTS
from batchtransform.logs import logs_dir


def controller_log() -> str:
    return (config.job_dir("job-1") / "controller.log").read_text()


def data_logs() -> list[Path]:
    return sorted(logs_dir("job-1").glob("*data-log"))


def assert_counts(description: dict[str, Any], completed: int, failed: int, out: Path) -> None:
    progress = description["Progress"]
    assert (progress["ObjectsCompleted"], progress["ObjectsFailed"]) == (completed, failed)
    assert progress["ObjectsCompleted"] + progress["ObjectsFailed"] <= progress["ObjectsTotal"]
    assert len(outputs(out)) == completed, "ObjectsCompleted is the outputs that exist"


def start_job(session: Session, tmp_path: Path, files: dict[str, str], **overrides: Any) -> None:
    write_inputs(tmp_path / "in", dict(files))
    request = job_request(
        input_uri=str(tmp_path / "in") + "/",
        output_path=str(tmp_path / "out"),
        BatchStrategy="SingleRecord",
        **overrides,
    )
    session.create_transform_job(**request)


def controller_pid(session: Session) -> int:
    record = session.service.store.get_job("job-1")
    assert record is not None and record.controller_pid
    return record.controller_pid


def test_one_kill_is_one_death_and_the_counts_stay_exact(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    """Two instances, six files, one SIGKILL: its pipe and its process both report the
    death, which must be handled once (the file once more elsewhere, one replacement)."""
    files = {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(8)) for i in range(6)}
    make_model(session, tmp_path, SLOW_HANDLER)
    start_job(session, tmp_path, files, TransformResources={"InstanceCount": 2})
    wait_until(lambda: records_done(session) > 0, what="the first records")
    os.kill(instance_pids(controller_pid(session))[0], signal.SIGKILL)

    description = wait_for_end(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert_counts(description, 6, 0, tmp_path / "out")
    assert outputs(tmp_path / "out") == {f"{k}.out": echoed(v) for k, v in files.items()}
    assert controller_log().count("killed by SIGKILL") == 1
    assert len(data_logs()) == 3, "two instances and one replacement"
    assert_no_process_left(batchtransform_home)


def handler_exiting_once(marker: Path) -> str:
    """Echoes; the first call of the whole job takes its process down with os._exit(9)."""
    return f"""
import os

def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    try:
        os.close(os.open({str(marker)!r}, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        os._exit(9)
    except FileExistsError:
        pass
    return "".join(f"out:{{line}}\\n" for line in body.split("\\n"))
"""


SEGFAULT_ON_POISON = """
import ctypes

def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    if "poison" in body:
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    return "".join(f"out:{line}\\n" for line in body.split("\\n"))
"""


def test_a_handler_that_takes_its_process_down_is_an_instance_death(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    files = {"a.csv": "1\n2\n", "b.csv": "3\n", "c.csv": "4\n5\n6\n"}
    make_model(session, tmp_path, handler_exiting_once(tmp_path / "exited"))
    start_job(session, tmp_path, files, TransformResources={"InstanceCount": 2})

    description = wait_for_end(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert_counts(description, 3, 0, tmp_path / "out")
    assert outputs(tmp_path / "out") == {f"{k}.out": echoed(v) for k, v in files.items()}
    assert controller_log().count("exited unexpectedly with code 9") == 1
    assert_no_process_left(batchtransform_home)


def test_a_file_that_crashes_every_instance_is_charged_after_its_tries(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    files = {"good1.csv": "1\n2\n", "bad.csv": "3\npoison\n", "good2.csv": "4\n"}
    make_model(session, tmp_path, SEGFAULT_ON_POISON)
    start_job(session, tmp_path, files, TransformResources={"InstanceCount": 2})

    description = wait_for_end(session, "job-1")
    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert "bad.csv" in reason and "SIGSEGV" in reason and f"tried {MAX_ATTEMPTS} times" in reason
    assert "\n" not in reason
    assert_counts(description, 2, 1, tmp_path / "out")
    assert outputs(tmp_path / "out") == {
        "good1.csv.out": echoed(files["good1.csv"]),
        "good2.csv.out": echoed(files["good2.csv"]),
    }
    assert controller_log().count("killed by SIGSEGV") == MAX_ATTEMPTS
    assert_no_process_left(batchtransform_home)


def test_a_killed_instance_leaves_no_model_server_nor_its_children(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    """The server gets the parent-death signal; the child it started (a grandchild of the
    instance, which that signal does not reach) is killed with the instance's session."""
    pid_file = tmp_path / "pids"
    program = f"process://{write_launcher(tmp_path)}"
    environment = {"MODEL_SERVER_MODE": "slow", "MODEL_SERVER_PID_FILE": str(pid_file)}
    session.create_model(
        ModelName="m1", PrimaryContainer={"Image": program, "Environment": environment}
    )
    files = {"a.csv": "".join(f"{n}\n" for n in range(20))}
    start_job(session, tmp_path, files)
    wait_until(lambda: records_done(session) > 0, what="the first records")
    server_and_child = [int(line) for line in pid_file.read_text().split()]
    assert len(server_and_child) == 2 and all(alive(pid) for pid in server_and_child)
    os.kill(instance_pids(controller_pid(session))[0], signal.SIGKILL)

    wait_until(lambda: not any(alive(pid) for pid in server_and_child), timeout=15)
    description = wait_for_end(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert outputs(tmp_path / "out") == {"a.csv.out": echoed(files["a.csv"])}
    assert_no_process_left(batchtransform_home)


def test_a_killed_controller_leaves_no_instance_nor_model_server(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    """Instances notice that their controller is gone and end, their model servers (and the
    servers' children) with them."""
    pid_file = tmp_path / "pids"
    program = f"process://{write_launcher(tmp_path)}"
    environment = {"MODEL_SERVER_MODE": "slow", "MODEL_SERVER_PID_FILE": str(pid_file)}
    session.create_model(
        ModelName="m1", PrimaryContainer={"Image": program, "Environment": environment}
    )
    files = {f"f{i}.csv": "".join(f"{n}\n" for n in range(50)) for i in range(2)}
    start_job(session, tmp_path, files, TransformResources={"InstanceCount": 2})
    wait_until(lambda: records_done(session) > 0, what="the first records")
    controller = controller_pid(session)
    assert len(instance_pids(controller)) == 2
    os.kill(controller, signal.SIGKILL)

    assert_no_process_left(batchtransform_home, timeout=20)
    assert not list((tmp_path / "out").glob("*")), "no partial output"
