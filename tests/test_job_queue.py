"""The job queue and GPUs on one machine, through real jobs: detached controllers, instance
processes, real files. The machine's GPUs are named by BATCHTRANSFORM_GPUS (these machines
have none), and each instance's model says what CUDA_VISIBLE_DEVICES it sees."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from documents import job_request
from lifecycle import alive, wait_for_end
from models import tar_model, write_model

from batchtransform import Session
from batchtransform.admission import default_max_instances
from batchtransform.console import JobFollower
from batchtransform.logs import logs_dir
from batchtransform.service import Service

# Each job names itself (JOB_LABEL) in the order file when its model loads; a job with a
# GATE waits in every request until that file exists. Records come back prefixed with the
# GPUs the instance sees.
QUEUE_HANDLER = """
import os, time

def model_fn(model_dir):
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
    print(f"visible={visible}", flush=True)
    with open(os.environ["ORDER_FILE"], "a") as order:
        order.write(os.environ["JOB_LABEL"] + "\\n")
    return visible

def transform_fn(model, body, content_type, accept):
    gate = os.environ.get("GATE")
    while gate and not os.path.exists(gate):
        time.sleep(0.05)
    text = body.decode() if isinstance(body, bytes) else body
    return "".join(f"{model}|{line}\\n" for line in text.split("\\n") if line)
"""


class Bench:
    """One model and one input folder; jobs created on it by name."""

    def __init__(self, session: Session, tmp_path: Path, files: int = 1) -> None:
        self.session, self.tmp_path = session, tmp_path
        self.order = tmp_path / "order.txt"
        self.gate = tmp_path / "gate"
        self.inputs = {f"f{n}.csv": f"{n}-a\n{n}-b\n" for n in range(files)}
        for name, text in self.inputs.items():
            (tmp_path / "in").mkdir(exist_ok=True)
            (tmp_path / "in" / name).write_text(text)
        archive = tar_model(write_model(tmp_path / "src", QUEUE_HANDLER), tmp_path / "m.tar.gz")
        session.create_model(
            ModelName="m1",
            PrimaryContainer={"Image": "batchtransform/python", "ModelDataUrl": archive.as_uri()},
        )

    def create(
        self,
        name: str,
        instances: int = 1,
        instance_type: str = "ml.m5.large",
        gated: bool = False,
        environment: dict[str, str] | None = None,
    ) -> None:
        env = {"JOB_LABEL": name, "ORDER_FILE": str(self.order), **(environment or {})}
        if gated:
            env["GATE"] = str(self.gate)
        request = job_request(
            name,
            input_uri=str(self.tmp_path / "in") + "/",
            output_path=str(self.tmp_path / "out" / name),
            TransformResources={"InstanceType": instance_type, "InstanceCount": instances},
            Environment=env,
        )
        self.session.create_transform_job(**request)

    def ran(self) -> list[str]:
        return self.order.read_text().split() if self.order.exists() else []

    def describe(self, name: str) -> dict[str, Any]:
        return self.session.describe_transform_job(TransformJobName=name)

    def queued(self, name: str) -> dict[str, Any] | None:
        queued: dict[str, Any] | None = self.describe(name)["Progress"].get("Queued")
        return queued

    def output(self, name: str) -> dict[str, str]:
        folder = self.tmp_path / "out" / name
        return {p.name: p.read_text() for p in sorted(folder.iterdir())} if folder.is_dir() else {}

    def expected(self, visible: str) -> dict[str, str]:
        return {
            f"{name}.out": "".join(f"{visible}|{line}\n" for line in text.split())
            for name, text in self.inputs.items()
        }


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def controller_log(job: str) -> str:
    """The job's own data-log stream (queue and placement), empty when it has none."""
    return "".join(p.read_text() for p in logs_dir(job).glob("controller-*.data-log"))


def model_logs(job: str) -> dict[int, str]:
    """Each instance's model log, by instance number."""
    found = {}
    for path in logs_dir(job).glob("instance-*.log"):
        found[int(path.name.split("-")[1])] = path.read_text()
    return found


def instance_pids(controller_pid: int) -> list[int]:
    """The controller's instance processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{controller_pid}/task/{controller_pid}/children").read_text()
    found = []
    for pid in map(int, children.split()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command:
            found.append(pid)
    return found


@pytest.fixture
def session() -> Session:
    return Session()


def test_jobs_wait_their_turn_in_creation_order(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_MAX_INSTANCES", "1")
    bench = Bench(session, tmp_path)
    bench.create("job-a", gated=True)
    wait_until(lambda: bench.ran() == ["job-a"], "job-a started")
    for name in ("job-b", "job-c", "job-d"):
        bench.create(name)
    wait_until(
        lambda: all(bench.queued(n) for n in ("job-b", "job-c", "job-d")), "three jobs queued"
    )
    described = bench.describe("job-b")
    assert described["TransformJobStatus"] == "InProgress"
    assert described["Progress"]["Queued"] == {
        "Position": 1,
        "Reason": "waiting for 1 instance slot (1 of BATCHTRANSFORM_MAX_INSTANCES=1 in use)",
    }
    assert bench.queued("job-c") == {"Position": 2, "Reason": "1 job ahead in the queue"}
    assert bench.queued("job-d") == {"Position": 3, "Reason": "2 jobs ahead in the queue"}
    bar = JobFollower().fields(bench.describe("job-d"), time.monotonic())  # run's progress bar
    assert bar["status"] == "queued: position 3"
    assert "Queued: position 1 on this machine (waiting for 1 instance slot" in controller_log(
        "job-b"
    )

    session.stop_transform_job(TransformJobName="job-c")  # a queued job stops at once
    assert wait_for_end(session, "job-c", timeout=30)["TransformJobStatus"] == "Stopped"
    assert "Stopped while queued: no instance was started" in controller_log("job-c")
    assert model_logs("job-c") == {}
    wait_until(lambda: (bench.queued("job-d") or {}).get("Position") == 2, "job-d moved up")

    bench.gate.touch()
    for name in ("job-a", "job-b", "job-d"):
        described = wait_for_end(session, name)
        assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
        assert "Queued" not in described["Progress"]
        assert bench.output(name) == bench.expected("")
    assert bench.ran() == ["job-a", "job-b", "job-d"]
    assert "Queue position 2 (1 job ahead in the queue)" in controller_log("job-d")
    assert "Admitted after" in controller_log("job-d")
    assert controller_log("job-a") == ""  # admitted at once: nothing to say
    # The job's own stream is one of its log streams, as the Logs API and `logs` read them.
    group = "/aws/sagemaker/TransformJobs"
    streams = session.call_logs(
        "DescribeLogStreams", {"logGroupName": group, "logStreamNamePrefix": "job-d/controller-"}
    )["logStreams"]
    assert [s["logStreamName"].endswith("/data-log") for s in streams] == [True]
    events = session.call_logs(
        "GetLogEvents",
        {
            "logGroupName": group,
            "logStreamName": streams[0]["logStreamName"],
            "startFromHead": True,
        },
    )["events"]
    assert "Queued: position 3 on this machine (2 jobs ahead in the queue)" in events[0]["message"]


def test_a_killed_controllers_slots_come_back(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_MAX_INSTANCES", "1")
    bench = Bench(session, tmp_path)
    bench.create("job-a", gated=True)
    wait_until(lambda: bench.ran() == ["job-a"], "job-a started")
    bench.create("job-b")
    wait_until(lambda: bench.queued("job-b") is not None, "job-b queued")
    record = Service().store.get_job("job-a")
    assert record is not None and record.controller_pid
    instances = instance_pids(record.controller_pid)
    assert len(instances) == 1
    os.kill(record.controller_pid, signal.SIGKILL)
    described = wait_for_end(session, "job-b")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert bench.output("job-b") == bench.expected("")
    assert wait_for_end(session, "job-a")["TransformJobStatus"] == "Failed"
    # The orphaned instance ends itself (its parent watch), as any instance does.
    wait_until(lambda: not any(alive(pid) for pid in instances), "job-a's instance gone")


def test_more_instances_than_the_cap_run_with_the_cap(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_MAX_INSTANCES", "1")
    bench = Bench(session, tmp_path, files=3)
    bench.create("job-a", instances=3)
    described = wait_for_end(session, "job-a")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert bench.output("job-a") == bench.expected("")
    assert sorted(model_logs("job-a")) == [1]
    assert (
        "InstanceCount 3 is more than this machine runs at once "
        "(BATCHTRANSFORM_MAX_INSTANCES=1): the job runs with 1 instance"
    ) in controller_log("job-a")


GPU_CASES = [
    # instance type, the job's Environment, the machine's GPUs, what each instance sees
    ("ml.g5.xlarge", {}, "0,1,2,3", ["0", "1"]),
    ("ml.g5.12xlarge", {}, "0,1,2,3,4,5,6,7", ["0,1,2,3", "4,5,6,7"]),
    ("ml.g5.xlarge", {"BATCHTRANSFORM_GPUS_PER_INSTANCE": "0.5"}, "0,1", ["0", "0"]),
    ("ml.m5.large", {}, "0,1", ["", ""]),
    ("ml.g5.xlarge", {}, "", ["", ""]),
    ("local", {}, "0,1", ["unset", "unset"]),
]


@pytest.mark.parametrize(("instance_type", "environment", "machine", "seen"), GPU_CASES)
def test_each_instance_sees_its_own_gpus(
    session: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instance_type: str,
    environment: dict[str, str],
    machine: str,
    seen: list[str],
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_GPUS", machine)
    monkeypatch.setenv("BATCHTRANSFORM_MAX_INSTANCES", "2")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    bench = Bench(session, tmp_path, files=2)
    bench.create("job-a", instances=2, instance_type=instance_type, environment=environment)
    described = wait_for_end(session, "job-a")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    logs = model_logs("job-a")
    assert sorted(logs) == [1, 2]
    assert [f"visible={seen[n - 1]}\n" in logs[n] for n in (1, 2)] == [True, True]
    outputs = bench.output("job-a")
    assert sorted(outputs) == ["f0.csv.out", "f1.csv.out"]
    for name, text in outputs.items():  # each file as one of the instances saw it
        assert any(text == bench.expected(v)[name] for v in seen), text
    said = controller_log("job-a")
    if any(v not in ("", "unset") for v in seen):
        assert f"by instance: instance 1: {seen[0]}, instance 2: {seen[1]}" in said
    if instance_type.startswith("ml.g") and not machine:
        assert "asks for GPUs, and this machine has no GPU" in said
        assert "the instances run on CPU" in said


def test_a_job_needing_more_gpus_than_the_machine_has_fails_at_once(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_GPUS", "0,1")
    bench = Bench(session, tmp_path)
    bench.create("job-a", instance_type="ml.p4d.24xlarge")
    described = wait_for_end(session, "job-a", timeout=30)
    assert described["TransformJobStatus"] == "Failed"
    assert described["FailureReason"] == (
        "ClientError: ml.p4d.24xlarge (8 GPUs an instance) needs 8 GPUs for one instance, "
        "and this machine has 2 GPUs (0, 1): missing 6"
    )
    assert model_logs("job-a") == {}


def test_jobs_never_share_a_gpu(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_GPUS", "7")
    monkeypatch.setenv("BATCHTRANSFORM_MAX_INSTANCES", "4")
    bench = Bench(session, tmp_path)
    bench.create("job-a", instance_type="ml.g5.xlarge", gated=True)
    wait_until(lambda: bench.ran() == ["job-a"], "job-a started")
    bench.create("job-b", instance_type="ml.g5.xlarge")
    wait_until(lambda: bench.queued("job-b") is not None, "job-b queued")
    assert bench.queued("job-b") == {
        "Position": 1,
        "Reason": "waiting for 1 instance slot (1 of BATCHTRANSFORM_MAX_INSTANCES=4 in use) "
        "and 1 GPUs (0 of 1 free)",
    }
    bench.gate.touch()
    for name in ("job-a", "job-b"):
        described = wait_for_end(session, name)
        assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
        assert bench.output(name) == bench.expected("7")
    assert bench.ran() == ["job-a", "job-b"]


class InstanceSampler:
    """Counts, every 50 ms, the instance processes of the given jobs' controllers."""

    def __init__(self, service: Service, jobs: list[str]) -> None:
        self.service, self.jobs = service, jobs
        self.most = 0
        self.samples = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> InstanceSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        pids = {}
        while not self._done.wait(0.05):
            for job in self.jobs:
                if job not in pids:
                    record = self.service.store.get_job(job)
                    if record is not None and record.controller_pid:
                        pids[job] = record.controller_pid
            running = 0
            for pid in pids.values():
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    running += len(instance_pids(pid))
            self.most = max(self.most, running)
            self.samples += 1


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_thirty_jobs_of_two_instances_created_at_once(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: 30 jobs of 2 instances at once on this machine, with the default
    cap. Never more instances than the cap, all Completed with exact outputs; the time
    against one job alone is printed (not asserted: the machine is shared)."""
    monkeypatch.delenv("BATCHTRANSFORM_MAX_INSTANCES", raising=False)
    cap = default_max_instances()
    bench = Bench(session, tmp_path, files=2)
    service = Service()
    solo = []
    for n in range(3):  # one job alone, three times: the median is the estimate
        started = time.monotonic()
        bench.create(f"solo-{n}", instances=2)
        assert wait_for_end(session, f"solo-{n}")["TransformJobStatus"] == "Completed"
        solo.append(time.monotonic() - started)
    alone = statistics.median(solo)
    names = [f"job-{n:02d}" for n in range(30)]
    with InstanceSampler(service, names) as sampler:
        started = time.monotonic()
        for name in names:
            bench.create(name, instances=2)
        created = time.monotonic() - started
        for name in names:
            described = wait_for_end(session, name, timeout=800)
            assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
        took = time.monotonic() - started
    for name in names:
        assert bench.output(name) == bench.expected("")
    if cap < 4:  # one job at a time: they ran in creation order
        assert list(dict.fromkeys(bench.ran()))[3:] == names
    print(
        f"\n30 jobs x 2 instances, cap {cap}: created in {created:.2f} s, all ended in "
        f"{took:.1f} s; one job alone {alone:.1f} s (median of "
        f"{', '.join(f'{t:.1f}' for t in solo)}; 30 x = {30 * alone:.1f} s, "
        f"ratio {took / (30 * alone):.2f}); most instances running at once: {sampler.most} "
        f"({sampler.samples} samples)"
    )
    assert 1 <= sampler.most <= cap


def test_a_bad_instance_type_table_fails_the_job_naming_the_file(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tmp_path / "types.json"
    table.write_text('{"types": {"ml.g5.xlarge": {"vcpus": 4, "gpus": 1}}}')
    monkeypatch.setenv("BATCHTRANSFORM_INSTANCE_TYPES", str(table))
    bench = Bench(session, tmp_path)
    bench.create("job-a", instance_type="ml.g5.xlarge")
    described = wait_for_end(session, "job-a", timeout=30)
    assert described["TransformJobStatus"] == "Failed"
    assert described["FailureReason"] == (
        f"ClientError: instance type table {table}, type 'ml.g5.xlarge': memory_gib must be "
        "a number, not None"
    )
    assert model_logs("job-a") == {}
