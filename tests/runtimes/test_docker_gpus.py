"""A GPU job with a container image: each instance's container is given that instance's
GPUs by the engine's own option, through the stand-in engine of the docker runtime tests
(our machines have neither a container engine nor a GPU)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from documents import job_request
from lifecycle import wait_for_end
from test_docker_runtime import fake_engine, recorded

from batchtransform import Session

__all__ = ["fake_engine"]  # the stand-in engine, a fixture of this module too


def test_each_container_gets_its_instances_gpus(
    fake_engine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_GPUS", "3,5")
    monkeypatch.setenv("BATCHTRANSFORM_MAX_INSTANCES", "2")
    (tmp_path / "in").mkdir()
    for name in ("a.csv", "b.csv"):
        (tmp_path / "in" / name).write_text(f"{name}-1\n{name}-2\n")
    session = Session()
    session.create_model(ModelName="m1", PrimaryContainer={"Image": "team/model:1"})
    request = job_request(
        input_uri=str(tmp_path / "in") + "/",
        output_path=str(tmp_path / "out"),
        TransformResources={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 2},
    )
    session.create_transform_job(**request)
    described = wait_for_end(session, "job-1")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    for name in ("a.csv", "b.csv"):
        expected = f"out:{name}-1\nout:{name}-2\n"
        assert (tmp_path / "out" / f"{name}.out").read_text() == expected
    runs = [call for call in recorded(fake_engine) if call[0] == "run"]
    given = sorted(run[run.index("--gpus") + 1] for run in runs)
    assert given == ['"device=3"', '"device=5"']
    # Inside the container the GPUs are numbered from 0: the host's numbers stay outside.
    assert not any("CUDA_VISIBLE_DEVICES" in " ".join(run) for run in runs)
    deadline = time.monotonic() + 30  # both containers removed once their instances ended
    while len([call for call in recorded(fake_engine) if call[0] == "rm"]) < 2:
        assert time.monotonic() < deadline, "a container was not removed"
        time.sleep(0.05)
