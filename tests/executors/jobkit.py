"""Jobs as the executor tests run them: inputs as local files, a model from a handler, and
the job's own processes (controller, instances) found by its BATCHTRANSFORM_HOME."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from documents import job_request
from models import tar_model, write_model

from batchtransform import Session, config
from batchtransform.executors.sessions import session_members
from batchtransform.logs import logs_dir


def make_model(session: Session, folder: Path, handler: str) -> None:
    archive = tar_model(write_model(folder / "model-src", handler), folder / "model.tar.gz")
    session.create_model(
        ModelName="m1",
        PrimaryContainer={"Image": "batchtransform/python", "ModelDataUrl": archive.as_uri()},
    )


def start_job(session: Session, folder: Path, files: dict[str, str], **overrides: Any) -> None:
    for name, text in files.items():
        (folder / "in").mkdir(parents=True, exist_ok=True)
        (folder / "in" / name).write_text(text)
    request = job_request(
        input_uri=str(folder / "in") + "/", output_path=str(folder / "out"), **overrides
    )
    session.create_transform_job(**request)


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*")) if p.is_file()}


def controller_log(job: str = "job-1") -> str:
    return (config.job_dir(job) / "controller.log").read_text()


def stream_texts(suffix: str, job: str = "job-1") -> list[str]:
    return [p.read_text() for p in sorted(logs_dir(job).glob(f"*{suffix}"))]


def records_done(session: Session) -> int:
    progress = session.describe_transform_job(TransformJobName="job-1")["Progress"]
    return int(progress["RecordsProcessed"])


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not in time: {what or condition}"
        time.sleep(0.05)


def processes_with_home(home: Path) -> dict[int, str]:
    """Live processes other than this one whose environment has this BATCHTRANSFORM_HOME
    (the job's controller and instances, local or Ray actors), with their command lines."""
    marker = f"BATCHTRANSFORM_HOME={home}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environment = (entry / "environ").read_bytes().split(b"\0")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if state != "Z" and marker in environment:
            found[int(entry.name)] = command
    return found


def actor_pids(sessions_of: list[int]) -> list[int]:
    """The instance actors' worker processes of a test's Ray cluster: in the sessions of
    its nodes, titled by Ray after the actor's class."""
    found = []
    for pid in (member for session in sessions_of for member in session_members(session)):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"_InstanceActor" in command:
            found.append(pid)
    return found


def instance_pids(home: Path, ray_sessions: list[int]) -> list[int]:
    """The job's instance processes: spawned local instances, or the Ray actors."""
    local = [pid for pid, command in processes_with_home(home).items() if "spawn_main" in command]
    return local + actor_pids(ray_sessions)


def assert_no_process_left(home: Path, ray_sessions: list[int], timeout: float = 20.0) -> None:
    """Nothing of the job outlives it: no process with its home, no instance actor."""
    deadline = time.monotonic() + timeout
    while left := [*processes_with_home(home), *actor_pids(ray_sessions)]:
        assert time.monotonic() < deadline, f"processes left behind by the job: {left}"
        time.sleep(0.1)
