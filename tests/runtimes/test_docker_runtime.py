"""The docker runtime: its command line, its clear failure without an engine, and a whole
run through a stand-in engine (our machines have no container engine)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from model_server import write_launcher

from batchtransform.errors import RuntimeStartError, ValidationError
from batchtransform.runtimes import check_image, create_runtime
from batchtransform.runtimes.base import RuntimeContext
from batchtransform.runtimes.docker import (
    ENGINE_ENV,
    DockerRuntime,
    check_engine,
    docker_command,
    find_engine,
)

# A stand-in for `docker`: `info` answers as ENGINE_INFO says; `run` starts the test model
# server as the container would (the published port as SAGEMAKER_BIND_TO_PORT, the --env
# options, the mounted model folder as working directory); every call is recorded.
FAKE_ENGINE = """
import json, os, sys
calls = os.environ["FAKE_ENGINE_CALLS"]
with open(calls, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
command = sys.argv[1]
if command == "info":
    if os.environ.get("FAKE_ENGINE_INFO") == "unreachable":
        sys.exit("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")
    sys.exit(0)
if command == "rm":
    sys.exit(0)
args, env, cwd, port = [a for a in sys.argv[2:] if a != "--rm"], dict(os.environ), None, None
while args[0].startswith("--"):
    option, value, args = args[0], args[1], args[2:]
    if option == "--env":
        key, _, text = value.partition("=")
        env[key] = text
    elif option == "--publish":
        port = value.split(":")[1]
    elif option == "--volume":
        cwd = value.split(":")[0]
image, verb = args
env["SAGEMAKER_BIND_TO_PORT"] = port
os.chdir(cwd)
os.execve(env["FAKE_ENGINE_SERVER"], [env["FAKE_ENGINE_SERVER"], verb], env)
"""


@pytest.fixture
def fake_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `docker` of our own, named by BATCHTRANSFORM_CONTAINER_ENGINE; returns its call log."""
    engine = tmp_path / "fake-docker"
    engine.write_text(f"#!{sys.executable}\n{FAKE_ENGINE}")
    engine.chmod(0o755)
    calls = tmp_path / "engine-calls"
    monkeypatch.setenv(ENGINE_ENV, str(engine))
    monkeypatch.setenv("FAKE_ENGINE_CALLS", str(calls))
    monkeypatch.setenv("FAKE_ENGINE_SERVER", str(write_launcher(tmp_path)))
    return calls


def recorded(calls: Path) -> list[list[str]]:
    return [json.loads(line) for line in calls.read_text().splitlines()]


def test_the_command_runs_the_image_as_sagemaker_does(tmp_path: Path) -> None:
    command = docker_command(
        "/usr/bin/docker",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/my-model:3",
        name="batchtransform-abc",
        host_port=41234,
        model_dir=tmp_path / "model",
        environment={"SAGEMAKER_BATCH": "true", "NOTE": "two words=yes"},
    )
    assert command == [
        "/usr/bin/docker", "run", "--rm",
        "--name", "batchtransform-abc",
        "--label", f"batchtransform.model-dir={tmp_path / 'model'}",
        "--publish", "127.0.0.1:41234:8080",
        "--volume", f"{tmp_path / 'model'}:/opt/ml/model",
        "--env", "SAGEMAKER_BATCH=true",
        "--env", "NOTE=two words=yes",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/my-model:3", "serve",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "image",
    [
        "nginx:latest",
        "my/image:1",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom:1",
        "localhost:5000/model@sha256:" + "a" * 64,
    ],
)
def test_other_images_get_the_docker_runtime(image: str, tmp_path: Path) -> None:
    assert isinstance(create_runtime(RuntimeContext(image, tmp_path)), DockerRuntime)


@pytest.mark.parametrize(
    "image",
    [
        "My/Image:1",
        "nginx:",
        "image:tag:again",
        "registry.example/-bad:1",
        "model@sha256:short",
        "process://relative/serve",
    ],
)
def test_malformed_images_are_refused_when_the_job_is_created(image: str) -> None:
    with pytest.raises(ValidationError, match="Image"):
        check_image(image)


@pytest.mark.parametrize(
    "image",
    [
        "nginx",
        "library/nginx:1.25-alpine",
        "registry.example:5000/a/b/c:v1.0_x",
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "batchtransform/python",
        "/opt/serve",
    ],
)
def test_well_formed_images_pass_the_check(image: str) -> None:
    check_image(image)


def test_no_engine_on_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        RuntimeStartError,
        match="no container engine found \\(looked for docker or podman on PATH\\)",
    ):
        find_engine({"PATH": str(tmp_path)})


def test_a_chosen_engine_that_is_missing_is_named(tmp_path: Path) -> None:
    with pytest.raises(RuntimeStartError, match=f"looked for {ENGINE_ENV}=nerdctl"):
        find_engine({"PATH": str(tmp_path), ENGINE_ENV: "nerdctl"})


def test_an_unreachable_engine_fails_the_start_at_once_saying_so(
    fake_engine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ENGINE_INFO", "unreachable")
    runtime = create_runtime(RuntimeContext("nginx:latest", tmp_path))
    with pytest.raises(RuntimeStartError) as caught:
        runtime.start()
    message = str(caught.value)
    assert message.startswith(
        "Image 'nginx:latest' needs a container engine (Docker or Podman), and the container engine"
    )
    assert "is not reachable (`" in message and "Cannot connect to the Docker daemon" in message
    assert "process:///path/to/program" in message
    assert [call[0] for call in recorded(fake_engine)] == ["info"], (
        "nothing is run without an engine"
    )


def test_check_engine_accepts_an_engine_that_answers(
    fake_engine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_engine(find_engine())
    assert recorded(fake_engine) == [["info"]]


def test_a_whole_run_through_the_engine(fake_engine: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    log = io.StringIO()
    environment = {
        "SAGEMAKER_BATCH": "true",
        "MODEL_SERVER_EXECUTION_PARAMETERS": '{"MaxPayloadInMB": 3}',
    }
    runtime = create_runtime(
        RuntimeContext(
            "my-registry.example:5000/team/model:1", model_dir, environment, log, 30.0, 30.0
        )
    )
    assert isinstance(runtime, DockerRuntime)
    runtime.start()
    try:
        assert runtime.execution_parameters() is not None
        assert runtime.invoke(b"1\n2", "text/csv", None) == b"out:1\nout:2\n"
    finally:
        runtime.stop()
    info, run, remove = recorded(fake_engine)
    assert info == ["info"]
    assert run[:2] == ["run", "--rm"] and run[-2:] == [
        "my-registry.example:5000/team/model:1",
        "serve",
    ]
    assert f"{model_dir}:/opt/ml/model" in run and "SAGEMAKER_BATCH=true" in run
    assert remove == ["rm", "--force", runtime.container_name]
    assert "listening on 127.0.0.1:" in log.getvalue()


# Starts the docker runtime through the stand-in engine, says the container's name, waits.
_INSTANCE = """
import io, sys, time
from pathlib import Path
from batchtransform.runtimes import create_runtime
from batchtransform.runtimes.base import RuntimeContext
runtime = create_runtime(RuntimeContext("team/model:1", Path(sys.argv[1]), {}, io.StringIO()))
runtime.start()
print(runtime.container_name, flush=True)
time.sleep(3600)
"""


def test_an_instance_killed_outright_has_its_container_removed(
    fake_engine: Path, tmp_path: Path
) -> None:
    """A container is no child of the instance: its reaper removes it when the instance
    dies without stopping it."""
    (tmp_path / "model").mkdir()
    instance = subprocess.Popen(
        [sys.executable, "-c", _INSTANCE, str(tmp_path / "model")], stdout=subprocess.PIPE
    )
    try:
        assert instance.stdout is not None
        name = instance.stdout.readline().decode().strip()
        assert name.startswith("batchtransform-")
        assert ["rm", "--force", name] not in recorded(fake_engine)
    finally:
        instance.kill()
        instance.wait()
        if instance.stdout is not None:
            instance.stdout.close()
    deadline = time.monotonic() + 30
    while ["rm", "--force", name] not in recorded(fake_engine):
        assert time.monotonic() < deadline, "the container was not removed"
        time.sleep(0.05)
