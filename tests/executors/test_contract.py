"""The executor contract, end to end, on every executor: the same jobs through the embedded
service, once with local processes and once with Ray actors on a cluster of this machine
(in a private network namespace; see ``raycluster``).

Each case holds for both: byte-exact outputs with the instances' logs in the job's streams;
a failing file fails the job by name and leaves no output; a stop ends every instance
within seconds and leaves no partial output; a killed instance's item runs again elsewhere.
"""

from __future__ import annotations

import os
import signal
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

from batchtransform import Session
from batchtransform.logs import DATA_LOG_SUFFIX, MODEL_LOG_SUFFIX

FILES = {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(5)) for i in range(5)}
FILES["tail.csv"] = "no newline at the end"
LOGGING_ECHO = ECHO_HANDLER + '\nprint("model loaded in", __name__, flush=True)\n'


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    with running_cluster(tmp_path_factory.mktemp("ray"), cpus=8, memory_gib=64) as cluster:
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
        model_logs = stream_texts(MODEL_LOG_SUFFIX)
        assert len(model_logs) == 2 and all("model loaded in" in t for t in model_logs)
        data_logs = stream_texts(DATA_LOG_SUFFIX)
        assert len(data_logs) == 2 and all("MaxPayloadInMB" in t for t in data_logs)
        assert (controller_log().count("runs on Ray node") == 2) == (executor == "ray")
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
        assert len(stream_texts(DATA_LOG_SUFFIX)) == 3, "two instances and one replacement"
        assert_no_process_left(batchtransform_home, ray_sessions)
