"""Real jobs through the model runtimes: a model server program, retries and failures, a
scikit-learn model under SageMaker's own image URI, a two-container pipeline, a server that
crashes mid-job, and a container image with no engine to run it."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from documents import job_request
from lifecycle import alive
from models import echoed, tar_model, write_model
from runtimes.model_server import write_launcher
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from test_end_to_end import outputs, records_done, wait_for, wait_until, write_inputs

from batchtransform import Session
from batchtransform.logs import logs_dir

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
INPUTS = {"a.csv": "1,2\n3,4\n", "sub/b.csv": "5,6\n7,8\n9,10\n"}


@pytest.fixture
def session() -> Session:
    return Session()


@pytest.fixture
def program(tmp_path: Path) -> str:
    """The test model server as a process Image."""
    return f"process://{write_launcher(tmp_path)}"


def server_model(
    session: Session, image: str, environment: dict[str, str], name: str = "m1"
) -> None:
    session.create_model(
        ModelName=name, PrimaryContainer={"Image": image, "Environment": environment}
    )


def run_job(
    session: Session, tmp_path: Path, inputs: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    write_inputs(tmp_path / "in", dict(inputs))
    request = job_request(
        input_uri=str(tmp_path / "in") + "/", output_path=str(tmp_path / "out"), **overrides
    )
    session.create_transform_job(**request)
    return wait_for(session, request["TransformJobName"])


def logs(kind: str) -> str:
    return "".join(p.read_text() for p in sorted(logs_dir("job-1").glob(f"*{kind}")))


def assert_gone(pid_file: Path, timeout: float = 15.0) -> None:
    """The model server and the child it started have ended: no orphans."""
    pids = [int(line) for line in pid_file.read_text().split()]
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"model server processes left running: {pids}"
        time.sleep(0.1)


def test_a_model_server_program_runs_a_job_with_its_execution_parameters(
    session: Session, tmp_path: Path, program: str
) -> None:
    pid_file = tmp_path / "pids"
    parameters = (
        '{"MaxConcurrentTransforms": 3, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 1}'
    )
    server_model(
        session,
        program,
        {"MODEL_SERVER_EXECUTION_PARAMETERS": parameters, "MODEL_SERVER_PID_FILE": str(pid_file)},
    )
    description = run_job(session, tmp_path, INPUTS)

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert outputs(tmp_path / "out") == {f"{k}.out": echoed(v) for k, v in INPUTS.items()}
    assert "MaxConcurrentTransforms=3, MaxPayloadInMB=1, BatchStrategy=SINGLE_RECORD" in logs(
        ".data-log"
    )
    assert "model server (echo) listening on 127.0.0.1:" in logs(".log")
    assert_gone(pid_file)


def test_a_server_that_fails_twice_is_retried_to_success(
    session: Session, tmp_path: Path, program: str
) -> None:
    server_model(session, program, {"MODEL_SERVER_MODE": "fail-then-succeed"})
    description = run_job(session, tmp_path, {"a.csv": "1\n2\n"})
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert outputs(tmp_path / "out") == {"a.csv.out": b"out:1\nout:2\n"}


def test_a_client_error_fails_the_file_at_once_with_the_models_words(
    session: Session, tmp_path: Path, program: str
) -> None:
    server_model(session, program, {"MODEL_SERVER_MODE": "bad-request"})
    description = run_job(session, tmp_path, {"a.csv": "x,y\n"})

    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert (
        "a.csv: ModelError: 400 Bad Request from the model: bad input: cannot parse 'x,y'" in reason
    )
    assert "(record 1, after 1 attempt)" in reason, "a 4xx is not retried"
    assert "400 Bad Request from the model: bad input" in logs(".data-log")
    assert not (tmp_path / "out").exists() or outputs(tmp_path / "out") == {}


def test_a_server_that_never_becomes_healthy_fails_the_job_quoting_it(
    session: Session, tmp_path: Path, program: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_STARTUP_TIMEOUT", "1")
    server_model(session, program, {"MODEL_SERVER_MODE": "never-healthy"})
    description = run_job(session, tmp_path, {"a.csv": "1\n"})

    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert "did not answer GET /ping with 200 within 1 s" in reason
    assert "loading weights, this takes a while..." in reason


def test_a_server_that_crashes_mid_job_leaves_no_partial_output_and_no_processes(
    session: Session, tmp_path: Path, program: str
) -> None:
    pid_file = tmp_path / "pids"
    server_model(
        session, program, {"MODEL_SERVER_MODE": "crash", "MODEL_SERVER_PID_FILE": str(pid_file)}
    )
    inputs = {"a.csv": "1\n2\n", "b.csv": "3\ncrash\n5\n", "c.csv": "6\n"}
    description = run_job(
        session,
        tmp_path,
        inputs,
        BatchStrategy="SingleRecord",
        ModelClientConfig={"InvocationsMaxRetries": 1},
    )

    assert description["TransformJobStatus"] == "Failed"
    assert "exited with code 1; its last output: " in description["FailureReason"]
    written = outputs(tmp_path / "out")
    assert "b.csv.out" not in written
    assert all(written[name] == echoed(inputs[name.removesuffix(".out")]) for name in written), (
        "whole or nothing"
    )
    assert_gone(pid_file)


def test_stopping_a_job_stops_its_model_servers(
    session: Session, tmp_path: Path, program: str
) -> None:
    pid_file = tmp_path / "pids"
    server_model(
        session, program, {"MODEL_SERVER_MODE": "slow", "MODEL_SERVER_PID_FILE": str(pid_file)}
    )
    write_inputs(tmp_path / "in", {"a.csv": "".join(f"{n}\n" for n in range(100))})
    request = job_request(
        input_uri=str(tmp_path / "in"),
        output_path=str(tmp_path / "out"),
        BatchStrategy="SingleRecord",
    )
    session.create_transform_job(**request)
    wait_until(lambda: records_done(session) > 0)
    session.stop_transform_job(TransformJobName="job-1")

    assert wait_for(session, "job-1")["TransformJobStatus"] == "Stopped"
    assert not list((tmp_path / "out").glob("*")), "a stopped file leaves nothing"
    assert_gone(pid_file)


def test_a_scikit_learn_model_under_sagemakers_image_uri(session: Session, tmp_path: Path) -> None:
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(features, labels)
    source = write_model(
        tmp_path / "src",
        """
        import os
        import joblib

        def model_fn(model_dir):
            return joblib.load(os.path.join(model_dir, "model.joblib"))
        """,
    )
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    (source / "model.joblib").write_bytes(buffer.getvalue())
    archive = tar_model(source, tmp_path / "model.tar.gz")
    environment = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_REGION": "us-east-1",
    }
    container = {
        "Image": SKLEARN_IMAGE,
        "ModelDataUrl": archive.as_uri(),
        "Environment": environment,
    }
    session.create_model(ModelName="m1", PrimaryContainer=container)
    files = {"first.csv": features[:70], "more/second.csv": features[70:]}
    inputs = {
        name: "\n".join(",".join(str(v) for v in row) for row in rows) + "\n"
        for name, rows in files.items()
    }
    description = run_job(session, tmp_path, inputs, TransformOutput={"Accept": "text/csv"})

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    expected = {
        f"{name}.out": "".join(
            f"{label}\n" for label in model.predict(rows.astype(np.float32))
        ).encode()
        for name, rows in files.items()
    }
    assert outputs(tmp_path / "out") == expected


def test_a_two_container_pipeline(session: Session, tmp_path: Path, program: str) -> None:
    preprocess = {
        "Image": program,
        "ContainerHostname": "preprocess",
        "Environment": {
            "MODEL_SERVER_MODE": "double",
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
        },
    }
    model = {
        "Image": program,
        "ContainerHostname": "model",
        "Environment": {"MODEL_SERVER_MODE": "headers"},
    }
    session.create_model(ModelName="m1", Containers=[preprocess, model])
    description = run_job(
        session, tmp_path, {"a.csv": "1,2\n3,4\n"}, TransformOutput={"Accept": "application/json"}
    )

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert outputs(tmp_path / "out") == {
        "a.csv.out": b"text/csv;application/json;2,4\ntext/csv;application/json;6,8\n"
    }
    model_log = logs(".log")
    assert "[preprocess] model server (double) listening" in model_log
    assert "[model] model server (headers) listening" in model_log


def test_a_container_image_with_no_engine_fails_the_job_saying_so(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = tmp_path / "docker"
    engine.write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon. Is the docker daemon running?' >&2\nexit 1\n"
    )
    engine.chmod(0o755)
    monkeypatch.setenv("BATCHTRANSFORM_CONTAINER_ENGINE", str(engine))
    server_model(session, "nginx:latest", {})
    description = run_job(session, tmp_path, {"a.csv": "1\n"})

    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert "Image 'nginx:latest' needs a container engine (Docker or Podman)" in reason
    assert "Cannot connect to the Docker daemon" in reason
