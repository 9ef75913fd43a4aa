"""The process runtime on a real model server program (model_server.py) on loopback."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from lifecycle import alive
from model_server import write_launcher

from batchtransform.errors import ModelError, RuntimeStartError, ValidationError
from batchtransform.runtimes import create_runtime
from batchtransform.runtimes.base import ExecutionParameters, RuntimeContext
from batchtransform.runtimes.process import ProcessRuntime, program_of
from batchtransform.shapes import BatchOptions, ContainerSpec, TransformJobSpec


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_launcher(tmp_path_factory.mktemp("programs"))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    return folder


def context(
    launcher: Path, model_dir: Path, environment: Mapping[str, str] | None = None, **settings: Any
) -> RuntimeContext:
    settings.setdefault("startup_timeout", 30.0)
    settings.setdefault("invocation_timeout", 30.0)
    image = f"process://{launcher}"
    return RuntimeContext(image, model_dir, dict(environment or {}), **settings)


@contextmanager
def running(runtime_context: RuntimeContext) -> Iterator[ProcessRuntime]:
    runtime = ProcessRuntime(runtime_context)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def wait_until_gone(pids: list[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"processes still running: {pids}"
        time.sleep(0.05)


def tree_pids(pid_file: Path) -> list[int]:
    return [int(line) for line in pid_file.read_text().split()]


IMAGES = [
    ("process URL", "process:///opt/models/serve", Path("/opt/models/serve")),
    ("file URL", "file:///opt/models/serve", Path("/opt/models/serve")),
    ("localhost file URL", "file://localhost/opt/my%20models/serve", Path("/opt/my models/serve")),
    ("plain absolute path", "/opt/models/serve", Path("/opt/models/serve")),
    ("container image", "nginx:latest", None),
    ("ECR image", "123456789012.dkr.ecr.us-east-1.amazonaws.com/model:1", None),
    ("in-process python", "batchtransform/python", None),
]  # fmt: skip


@pytest.mark.parametrize(("image", "program"), [c[1:] for c in IMAGES], ids=[c[0] for c in IMAGES])
def test_which_images_name_a_program(image: str, program: Path | None) -> None:
    assert program_of(image) == program


@pytest.mark.parametrize(
    "image", ["process://relative/serve", "file://host/opt/serve", "process://"]
)
def test_a_program_image_that_is_not_an_absolute_path_is_refused(image: str) -> None:
    with pytest.raises(ValidationError, match="absolute path"):
        program_of(image)


def test_the_registry_runs_program_images_with_the_process_runtime(
    launcher: Path, model_dir: Path
) -> None:
    for image in (f"process://{launcher}", f"file://{launcher}", str(launcher)):
        assert isinstance(create_runtime(RuntimeContext(image, model_dir)), ProcessRuntime)


def test_echo_server_answers_each_mini_batch(launcher: Path, model_dir: Path) -> None:
    with running(context(launcher, model_dir)) as runtime:
        assert runtime.invoke(b"1,2\n3,4", "text/csv", "text/csv") == b"out:1,2\nout:3,4\n"
        assert runtime.invoke_with_type(b"5", None, None) == (b"out:5\n", "text/csv")


def test_concurrent_invocations_reuse_kept_alive_connections(
    launcher: Path, model_dir: Path
) -> None:
    with running(context(launcher, model_dir)) as runtime:
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda n: runtime.invoke(f"{n}".encode(), None, None), range(400))
            )
        assert answers == [f"out:{n}\n".encode() for n in range(400)]
        assert runtime._client is not None
        port = runtime._client._client.base_url.port
        stats = httpx.get(f"http://127.0.0.1:{port}/stats", trust_env=False).json()
    assert stats["invocations"] == 400
    assert stats["connections"] <= 8 + 1, "one connection per concurrent caller, plus /stats"


def test_headers_are_the_jobs_content_type_and_accept_and_nothing_when_unset(
    launcher: Path, model_dir: Path
) -> None:
    environment = {"MODEL_SERVER_MODE": "headers"}
    with running(context(launcher, model_dir, environment)) as runtime:
        assert (
            runtime.invoke(b"a", "text/csv", "application/json") == b"text/csv;application/json;a\n"
        )
        assert runtime.invoke(b"a", None, None) == b"-;-;a\n"


EXECUTION_PARAMETERS = [
    ("environment spelling", '{"MaxConcurrentTransforms": 8, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}', ExecutionParameters(8, "MultiRecord", 6)),
    ("API spelling", '{"BatchStrategy": "SingleRecord"}', ExecutionParameters(batch_strategy="SingleRecord")),
    ("lower case", '{"BatchStrategy": "single_record", "MaxPayloadInMB": 0}', ExecutionParameters(batch_strategy="SingleRecord", max_payload_in_mb=0)),
    ("unknown keys ignored", '{"MaxConcurrentTransforms": 2, "Other": true}', ExecutionParameters(max_concurrent_transforms=2)),
    ("not provided (404)", None, None),
    ("not JSON", "MaxConcurrentTransforms=8", None),
    ("bad strategy", '{"BatchStrategy": "ALL_AT_ONCE"}', None),
    ("negative payload", '{"MaxPayloadInMB": -1}', None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "expected"),
    [c[1:] for c in EXECUTION_PARAMETERS],
    ids=[c[0] for c in EXECUTION_PARAMETERS],
)
def test_execution_parameters_come_from_the_server(
    launcher: Path, model_dir: Path, answer: str | None, expected: ExecutionParameters | None
) -> None:
    environment = {} if answer is None else {"MODEL_SERVER_EXECUTION_PARAMETERS": answer}
    log = io.StringIO()
    with running(context(launcher, model_dir, environment, log=log)) as runtime:
        assert runtime.execution_parameters() == expected
    if answer is not None and expected is None:
        assert "GET /execution-parameters: invalid answer, ignored" in log.getvalue()


def test_the_environment_is_exactly_the_batch_environment(
    launcher: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGEMAKER_BATCH_STRATEGY", "left over from the caller's shell")
    monkeypatch.setenv("SM_CHANNELS", "left over too")
    container = ContainerSpec(
        "unused",
        environment={"MODEL_SETTING": "m", "SHARED": "from model", "MODEL_SERVER_MODE": "env"},
    )
    job = TransformJobSpec(
        "job",
        "model",
        "s3://b/in",
        batch=BatchOptions(max_payload_mb=2),
        environment={"SHARED": "from job"},
    )
    with running(context(launcher, model_dir, job.container_environment(container))) as runtime:
        answer = json.loads(runtime.invoke(b"", None, None))
    environment = answer["environment"]
    platform = {k: v for k, v in environment.items() if k.startswith(("SAGEMAKER_", "SM_"))}
    port = platform.pop("SAGEMAKER_BIND_TO_PORT")
    assert port.isdigit()
    assert platform == {
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "2",
        "SM_MODEL_DIR": str(model_dir),
    }
    assert (environment["MODEL_SETTING"], environment["SHARED"]) == ("m", "from job")
    assert environment["PATH"] == os.environ["PATH"], (
        "the rest of the instance's environment is kept"
    )
    assert answer["cwd"] == str(model_dir)


def test_a_server_that_never_becomes_healthy_fails_the_start_quoting_its_output(
    launcher: Path, model_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    environment = {"MODEL_SERVER_MODE": "never-healthy", "MODEL_SERVER_PID_FILE": str(pid_file)}
    runtime = ProcessRuntime(context(launcher, model_dir, environment, startup_timeout=1.0))
    with pytest.raises(RuntimeStartError) as caught:
        runtime.start()
    message = str(caught.value)
    assert (
        "did not answer GET /ping with 200 within 1 s (last answer: 503 Service Unavailable"
        in message
    )
    assert "BATCHTRANSFORM_STARTUP_TIMEOUT" in message
    assert "loading weights, this takes a while..." in message
    wait_until_gone(tree_pids(pid_file))


def test_a_server_that_exits_at_start_says_why(
    launcher: Path, model_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    environment = {"MODEL_SERVER_MODE": "exit-at-start", "MODEL_SERVER_PID_FILE": str(pid_file)}
    runtime = ProcessRuntime(context(launcher, model_dir, environment))
    with pytest.raises(
        RuntimeStartError, match="exited with code 3 before it answered GET /ping"
    ) as caught:
        runtime.start()
    assert "fatal: cannot load model weights" in str(caught.value)
    wait_until_gone(tree_pids(pid_file))  # its child, left behind in its group, too


@pytest.mark.parametrize(
    ("make", "problem"), [("missing", "does not exist"), ("not-executable", "is not executable")]
)
def test_a_program_that_cannot_run_is_named(
    model_dir: Path, tmp_path: Path, make: str, problem: str
) -> None:
    program = tmp_path / "serve"
    if make == "not-executable":
        program.write_text("#!/bin/sh\n")
    runtime = ProcessRuntime(RuntimeContext(f"process://{program}", model_dir))
    with pytest.raises(RuntimeStartError, match=f"{program} {problem}"):
        runtime.start()


def test_a_5xx_carries_status_and_body_and_may_be_retried(launcher: Path, model_dir: Path) -> None:
    environment = {"MODEL_SERVER_MODE": "fail-then-succeed", "MODEL_SERVER_FAILURES": "1"}
    with running(context(launcher, model_dir, environment)) as runtime:
        with pytest.raises(ModelError) as caught:
            runtime.invoke(b"1", "text/csv", None)
        assert runtime.invoke(b"1", "text/csv", None) == b"out:1\n"
    error = caught.value
    assert (error.model_status, error.retryable, error.body) == (500, True, "transient failure 1")
    assert (
        error.message == "ModelError: 500 Internal Server Error from the model: transient failure 1"
    )


def test_a_4xx_is_not_retryable(launcher: Path, model_dir: Path) -> None:
    settings = context(launcher, model_dir, {"MODEL_SERVER_MODE": "bad-request"})
    with running(settings) as runtime, pytest.raises(ModelError) as caught:
        runtime.invoke(b"x,y\nz", "text/csv", None)
    assert (caught.value.model_status, caught.value.retryable) == (400, False)
    assert (
        caught.value.message
        == "ModelError: 400 Bad Request from the model: bad input: cannot parse 'x,y'"
    )


def test_a_server_that_hangs_times_out(launcher: Path, model_dir: Path) -> None:
    settings = context(launcher, model_dir, {"MODEL_SERVER_MODE": "hang"}, invocation_timeout=1.0)
    with running(settings) as runtime, pytest.raises(ModelError) as caught:
        runtime.invoke(b"1", None, None)
    assert (caught.value.model_status, caught.value.retryable) == (None, True)
    assert (
        "no complete response within 1 s (ModelClientConfig.InvocationsTimeoutInSeconds)"
        in caught.value.message
    )


def test_a_server_that_crashes_is_named_with_its_last_output_and_its_tree_is_gone(
    launcher: Path, model_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    environment = {"MODEL_SERVER_MODE": "crash", "MODEL_SERVER_PID_FILE": str(pid_file)}
    with running(context(launcher, model_dir, environment)) as runtime:
        assert runtime.invoke(b"fine", None, None) == b"out:fine\n"
        with pytest.raises(ModelError) as first:
            runtime.invoke(b"crash", None, None)
        with pytest.raises(ModelError) as later:
            runtime.invoke(b"fine", None, None)
    for caught in (first, later):
        assert caught.value.model_status is None
        assert "exited with code 1; its last output:" in caught.value.message
        assert "crashing on a poisoned record" in caught.value.message
    wait_until_gone(tree_pids(pid_file))


def test_stop_ends_the_whole_process_tree_and_is_idempotent(
    launcher: Path, model_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    runtime = ProcessRuntime(context(launcher, model_dir, {"MODEL_SERVER_PID_FILE": str(pid_file)}))
    runtime.start()
    pids = tree_pids(pid_file)
    assert all(alive(pid) for pid in pids)
    runtime.stop()
    runtime.stop()
    wait_until_gone(pids)
    with pytest.raises(ModelError, match="not started, or already stopped"):
        runtime.invoke(b"1", None, None)


def test_server_output_goes_to_the_log_with_the_container_name(
    launcher: Path, model_dir: Path
) -> None:
    log = io.StringIO()
    with running(context(launcher, model_dir, log=log, name="preprocess")):
        pass
    lines = log.getvalue().splitlines()
    assert any(
        line.startswith("[preprocess] model server (echo) listening on 127.0.0.1:")
        for line in lines
    )
    assert any(line.startswith("[preprocess] started the model server") for line in lines)
