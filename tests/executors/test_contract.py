"""The executor contract, end to end, on every executor: the same jobs through the embedded
service, once with local processes and once with Ray actors on a cluster of this machine
(in a private network namespace; see ``raycluster``).

Each case holds for both: byte-exact outputs with the instances' logs in the job's streams;
a failing file fails the job by name and leaves no output; a stop ends every instance
within seconds and leaves no partial output; a killed instance's item runs again elsewhere.
Then what is Ray's own, on the same cluster: actors sized by the instance type (GPUs the
node declares without having them, shared by a fraction), a type no node can hold, and
Ray missing or an executor nobody knows.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobkit import (
    assert_no_process_left,
    controller_log,
    instance_pids,
    make_model,
    outputs,
    records_done,
    start_job,
    stream_texts,
    wait_until,
)
from lifecycle import wait_for_end
from models import ECHO_HANDLER, POISON_HANDLER, SLOW_HANDLER, echoed
from raycluster import RayCluster, running_cluster

from batchtransform import Session, config
from batchtransform.logs import DATA_LOG_SUFFIX, MODEL_LOG_SUFFIX, logs_dir
from batchtransform.service import Service

FILES = {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(5)) for i in range(5)}
FILES["tail.csv"] = "no newline at the end"
LOGGING_ECHO = ECHO_HANDLER + '\nprint("model loaded in", __name__, flush=True)\n'


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    folder = tmp_path_factory.mktemp("ray")
    with running_cluster(folder, cpus=8, memory_gib=64, gpus=1) as cluster:
        yield cluster


@pytest.fixture(params=["local", "ray"])
def executor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    monkeypatch.setenv("BATCHTRANSFORM_EXECUTOR", request.param)
    return str(request.param)


@pytest.fixture
def ray_sessions(request: pytest.FixtureRequest, executor: str) -> list[int]:
    """The sessions of the Ray nodes, where the instance actors run (none: local)."""
    if executor != "ray":
        return []
    cluster: RayCluster = request.getfixturevalue("ray_cluster")
    return cluster.sessions


def ready_instances(executor: str) -> list[int]:
    """The numbers of the instances that started their model: on Ray, as the controller
    log names them; locally, every instance (all start before the first file is done)."""
    if executor == "local":
        return [int(p.name.split("-")[1]) for p in logs_dir("job-1").glob("*.data-log")]
    lines = controller_log().splitlines()
    return [int(line.split()[1]) for line in lines if "runs on Ray node" in line]


def instance_stream(number: int, suffix: str) -> str:
    (path,) = logs_dir("job-1").glob(f"instance-{number}-*{suffix}")
    return path.read_text()


class TestExecutorContract:
    def test_outputs_are_byte_exact_and_logs_reach_the_streams(
        self, executor: str, tmp_path: Path, batchtransform_home: Path, ray_sessions: list[int]
    ) -> None:
        session = Session()
        make_model(session, tmp_path, LOGGING_ECHO)
        start_job(session, tmp_path, FILES, TransformResources={"InstanceCount": 2})

        description = wait_for_end(session, "job-1")
        assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
        assert outputs(tmp_path / "out") == {f"{k}.out": echoed(v) for k, v in FILES.items()}
        assert description["Progress"]["ObjectsCompleted"] == len(FILES)
        # Every instance that started has both streams, with its lines. On Ray an actor
        # still starting when the last file is taken is ended instead of kept for nothing.
        started = ready_instances(executor)
        assert len(started) == 2 if executor == "local" else 1 <= len(started) <= 2
        for number in started:
            assert "model loaded in" in instance_stream(number, MODEL_LOG_SUFFIX)
            assert "MaxPayloadInMB" in instance_stream(number, DATA_LOG_SUFFIX)
        fetched = list((config.job_dir("job-1") / "model-cache").glob("*.complete"))
        assert len(fetched) == (1 if executor == "ray" else 0), "once per node on Ray"
        assert_no_process_left(batchtransform_home, ray_sessions)

    def test_a_failing_file_fails_the_job_by_name(self, executor: str, tmp_path: Path) -> None:
        session = Session()
        make_model(session, tmp_path, POISON_HANDLER)
        files = {"good.csv": "1\n2\n", "bad.csv": "3\npoison\n4\n"}
        start_job(session, tmp_path, files, TransformResources={"InstanceCount": 2})

        description = wait_for_end(session, "job-1")
        assert description["TransformJobStatus"] == "Failed"
        assert "bad.csv" in description["FailureReason"]
        assert "poisoned record" in description["FailureReason"]
        assert outputs(tmp_path / "out") == {"good.csv.out": echoed(files["good.csv"])}
        assert any("bad.csv" in text for text in stream_texts(DATA_LOG_SUFFIX))

    def test_a_stop_ends_every_instance_and_leaves_no_partial_output(
        self, executor: str, tmp_path: Path, batchtransform_home: Path, ray_sessions: list[int]
    ) -> None:
        session = Session()
        make_model(session, tmp_path, SLOW_HANDLER)
        files = {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(40)) for i in range(2)}
        start_job(
            session, tmp_path, files, BatchStrategy="SingleRecord",
            TransformResources={"InstanceCount": 2},
        )  # fmt: skip
        wait_until(lambda: records_done(session) > 0, what="the first records")
        session.stop_transform_job(TransformJobName="job-1")

        description = wait_for_end(session, "job-1", timeout=30)
        assert description["TransformJobStatus"] == "Stopped"
        assert not list((tmp_path / "out").glob("*")), "a stopped file leaves nothing"
        assert_no_process_left(batchtransform_home, ray_sessions)

    def test_a_killed_instance_has_its_item_run_again_elsewhere(
        self, executor: str, tmp_path: Path, batchtransform_home: Path, ray_sessions: list[int]
    ) -> None:
        session = Session()
        make_model(session, tmp_path, SLOW_HANDLER)
        files = {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(6)) for i in range(4)}
        start_job(
            session, tmp_path, files, BatchStrategy="SingleRecord",
            TransformResources={"InstanceCount": 2},
        )  # fmt: skip
        wait_until(lambda: records_done(session) > 0, what="the first records")
        os.kill(instance_pids(batchtransform_home, ray_sessions)[0], signal.SIGKILL)

        description = wait_for_end(session, "job-1")
        assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
        assert outputs(tmp_path / "out") == {f"{k}.out": echoed(v) for k, v in files.items()}
        lost = [line for line in controller_log().splitlines() if line.startswith("instance ")]
        deaths = [line for line in lost if ": " in line and "runs on Ray node" not in line]
        assert len(deaths) == 1, lost
        # two instances and one replacement; on Ray the second may not have started in time
        streams = len(stream_texts(DATA_LOG_SUFFIX))
        assert streams == 3 if executor == "local" else 2 <= streams <= 3
        assert_no_process_left(batchtransform_home, ray_sessions)

    def test_a_killed_instance_holding_several_small_files_runs_each_once(
        self, executor: str, tmp_path: Path, batchtransform_home: Path, ray_sessions: list[int]
    ) -> None:
        """Small files go out several to an instance; the killed one's, under way and sent
        behind it, run elsewhere: each output exact, each file counted once."""
        session = Session()
        make_model(session, tmp_path, SLOW_HANDLER)
        files = {f"f{i:02d}.csv": f"{i}-a\n{i}-b\n" for i in range(12)}
        start_job(
            session, tmp_path, files, BatchStrategy="SingleRecord",
            TransformResources={"InstanceCount": 2},
        )  # fmt: skip
        wait_until(lambda: records_done(session) > 2, what="the first files")
        os.kill(instance_pids(batchtransform_home, ray_sessions)[0], signal.SIGKILL)

        description = wait_for_end(session, "job-1")
        assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
        assert outputs(tmp_path / "out") == {f"{k}.out": echoed(v) for k, v in files.items()}
        assert description["Progress"]["ObjectsCompleted"] == len(files)
        assert_no_process_left(batchtransform_home, ray_sessions)

    def test_instances_are_sampled_and_their_seconds_counted(
        self, executor: str, tmp_path: Path
    ) -> None:
        session = Session()
        make_model(session, tmp_path, SLOW_HANDLER)
        files = {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(10)) for i in range(2)}
        start_job(
            session, tmp_path, files, BatchStrategy="SingleRecord",
            TransformResources={"InstanceCount": 2},
        )  # fmt: skip

        description = wait_for_end(session, "job-1")
        assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
        assert description["Progress"]["InstanceSeconds"]["ml.m5.large"] > 2.0  # 20 calls of 0.2 s
        assert isinstance(session.service, Service)
        samples = session.service.job_samples("job-1")
        assert [s for s in samples if s.instance == ""][-1].values["records"] == 20
        measured = [s for s in samples if s.instance]
        assert {s.instance for s in measured} <= {"instance-1", "instance-2", "instance-3"}
        assert measured, "each instance is sampled a second after it starts, then every 2 s"
        for sample in measured:  # a Python process with the model loaded, on an 8 GiB type
            assert sample.values["memory_bytes"] > 20 * 2**20
            assert 0 < sample.values["memory_percent"] < 100
            assert sample.values["cpu_percent"] >= 0


# Each instance waits, in its first call, until another instance has called too: with one
# GPU on the node, two instances of a one-GPU type can run together only if each asks for
# half of it. Each record's output says which GPU Ray handed the instance.
GPU_RENDEZVOUS = """
import os, time
from pathlib import Path

def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    meeting = Path({meeting!r})
    (meeting / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(meeting.iterdir())) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("the other instance never ran beside this one")
        time.sleep(0.05)
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    return "".join(f"{{line}} gpu={{gpu}}\\n" for line in body.split("\\n") if line)
"""


@pytest.mark.usefixtures("ray_cluster")
class TestRayResources:
    @pytest.fixture(autouse=True)
    def _on_ray(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BATCHTRANSFORM_EXECUTOR", "ray")

    def test_a_gpu_type_shares_the_nodes_gpu_when_the_job_asks_for_half(
        self, tmp_path: Path
    ) -> None:
        session = Session()
        (tmp_path / "meeting").mkdir()
        make_model(session, tmp_path, GPU_RENDEZVOUS.format(meeting=str(tmp_path / "meeting")))
        files = {"a.csv": "1\n2\n", "b.csv": "3\n"}
        start_job(
            session, tmp_path, files, BatchStrategy="SingleRecord",
            TransformResources={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 2},
            Environment={"BATCHTRANSFORM_GPUS_PER_INSTANCE": "0.5"},
        )  # fmt: skip

        description = wait_for_end(session, "job-1")
        assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
        assert outputs(tmp_path / "out") == {
            "a.csv.out": b"1 gpu=0\n2 gpu=0\n",
            "b.csv.out": b"3 gpu=0\n",
        }
        assert len(list((tmp_path / "meeting").iterdir())) == 2

    def test_a_type_no_node_can_hold_fails_at_once_naming_what_is_missing(
        self, tmp_path: Path
    ) -> None:
        session = Session()
        make_model(session, tmp_path, ECHO_HANDLER)
        start_job(
            session, tmp_path, {"a.csv": "1\n"},
            TransformResources={"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 1},
        )  # fmt: skip

        description = wait_for_end(session, "job-1", timeout=30)
        assert description["TransformJobStatus"] == "Failed"
        reason = description["FailureReason"]
        assert reason.startswith("ClientError: no node of the Ray cluster"), reason
        assert "ml.p4d.24xlarge" in reason
        assert "GPU: 8 wanted, the largest node has 1" in reason
        assert "CPU: 96 wanted, the largest node has 8" in reason
        assert not (tmp_path / "out").exists()


NO_RAY = "raise ImportError(\"No module named 'ray'\", name='ray')\n"


def test_the_ray_executor_without_ray_fails_the_job_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray made unimportable for the job's controller: a package of that name first on its
    path that refuses to import, as an interpreter without the extra would."""
    (tmp_path / "shadow" / "ray").mkdir(parents=True)
    (tmp_path / "shadow" / "ray" / "__init__.py").write_text(NO_RAY)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "shadow"))
    monkeypatch.setenv("BATCHTRANSFORM_EXECUTOR", "ray")
    session = Session()
    make_model(session, tmp_path, ECHO_HANDLER)
    start_job(session, tmp_path, {"a.csv": "1\n"})

    description = wait_for_end(session, "job-1", timeout=30)
    assert description["TransformJobStatus"] == "Failed"
    assert "batchtransform[ray]" in description["FailureReason"]


def test_an_executor_nobody_knows_fails_the_job_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_EXECUTOR", "kubernetes")
    session = Session()
    make_model(session, tmp_path, ECHO_HANDLER)
    start_job(session, tmp_path, {"a.csv": "1\n"})

    description = wait_for_end(session, "job-1", timeout=30)
    assert description["TransformJobStatus"] == "Failed"
    assert "BATCHTRANSFORM_EXECUTOR='kubernetes'" in description["FailureReason"]


def test_a_ray_address_where_nothing_answers_fails_the_job_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a loopback port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("BATCHTRANSFORM_EXECUTOR", "ray")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    session = Session()
    make_model(session, tmp_path, ECHO_HANDLER)
    start_job(session, tmp_path, {"a.csv": "1\n"})

    description = wait_for_end(session, "job-1", timeout=30)
    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert f"cannot join the Ray cluster at 127.0.0.1:{port}" in reason, reason
