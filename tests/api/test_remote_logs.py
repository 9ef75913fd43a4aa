"""``batchtransform logs`` and the SDK's log printing against a server on another "machine":
``batchtransform server`` in a process of its own with its own state folder, and clients
whose state folder is elsewhere, so every line they print came through the Logs API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from documents import job_request, model_request
from models import ECHO_HANDLER, POISON_HANDLER, tar_model, write_model

from batchtransform import NotFoundError, Session, Transformer

ACCESS_KEY = "AKIDREMOTELOGS"
SECRET_KEY = "remote-logs-secret"
PROGRAM = str(Path(sys.executable).parent / "batchtransform")


def aws_variables(tmp_path: Path) -> dict[str, str]:
    return {
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    """``batchtransform server`` on a free port, its state in ``<tmp>/server-home``."""
    env = {
        **os.environ,
        **aws_variables(tmp_path),
        "BATCHTRANSFORM_HOME": str(tmp_path / "server-home"),
        "BATCHTRANSFORM_SERVER_ACCESS_KEY_ID": ACCESS_KEY,
        "BATCHTRANSFORM_SERVER_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    with (tmp_path / "server.err").open("w") as errors:  # a full pipe would block it
        process = subprocess.Popen(
            [PROGRAM, "server", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
        )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert " on http://127.0.0.1:" in banner, banner
        yield banner.split(" on ", 1)[1].split(" ", 1)[0]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def client_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batchtransform_home: Path
) -> dict[str, str]:
    """A client's environment: the server's key, and a state folder of its own."""
    for name, value in aws_variables(tmp_path).items():
        monkeypatch.setenv(name, value)
    return {**os.environ, "BATCHTRANSFORM_HOME": str(batchtransform_home)}


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROGRAM, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def start_job(server_url: str, env: dict[str, str], tmp_path: Path, handler: str) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("1,2\npoison\n")
    model = tar_model(write_model(tmp_path / "model", handler), tmp_path / "model.tar.gz")
    documents = {
        "model.json": model_request("m1", model.as_uri()),
        "job.json": job_request(
            "job-1", input_uri=(tmp_path / "in").as_uri(), output_path=(tmp_path / "out").as_uri()
        ),
    }
    for name, document in documents.items():
        (tmp_path / name).write_text(json.dumps(document))
    for command, document in (("create-model", "model.json"), ("create-transform-job", "job.json")):
        done = run_cli(
            env,
            "--endpoint-url",
            server_url,
            command,
            "--cli-input-json",
            f"file://{tmp_path / document}",
        )
        assert done.returncode == 0, done.stderr


def test_the_logs_command_follows_a_remote_job(
    server_url: str, client_env: dict[str, str], tmp_path: Path
) -> None:
    start_job(server_url, client_env, tmp_path, ECHO_HANDLER)

    followed = run_cli(client_env, "logs", "job-1", "--follow", "--endpoint-url", server_url)

    assert followed.returncode == 0, followed.stderr
    lines = followed.stdout.splitlines()
    assert any(line.startswith("[instance-1-") and "Container 1 of 1" in line for line in lines)
    data_log = [line for line in lines if "/data-log] " in line]
    assert "MaxConcurrentTransforms=1, MaxPayloadInMB=6" in data_log[0]
    assert not (Path(client_env["BATCHTRANSFORM_HOME"]) / "jobs").exists(), "nothing local"
    again = run_cli(client_env, "--endpoint-url", server_url, "logs", "job-1")
    # A follower prints each round as it comes, so lines of different streams may stand in
    # another order than in one read of the finished job; each stream's lines may not.
    assert by_stream(again.stdout) == by_stream(followed.stdout), "each line once, in order"


def by_stream(printed: str) -> dict[str, list[str]]:
    """The printed ``[stream] message`` lines, grouped by stream, in the order printed."""
    streams: dict[str, list[str]] = {}
    for line in printed.splitlines():
        stream, _, message = line.partition("] ")
        streams.setdefault(stream, []).append(message)
    return streams


def test_the_logs_command_on_a_failed_or_unknown_remote_job(
    server_url: str, client_env: dict[str, str], tmp_path: Path
) -> None:
    start_job(server_url, client_env, tmp_path, POISON_HANDLER)

    followed = run_cli(client_env, "logs", "job-1", "--follow", "--endpoint-url", server_url)
    assert followed.returncode == 1, followed.stderr
    assert "ValueError: poisoned record" in followed.stdout, "the model's traceback"
    assert "Error for Transform job job-1: Failed" in followed.stderr

    unknown = run_cli(client_env, "logs", "ghost", "--endpoint-url", server_url)
    assert unknown.returncode == 254
    assert "(ValidationException) when calling the DescribeTransformJob operation" in unknown.stderr


def test_a_remote_transformer_prints_the_logs(
    server_url: str, client_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start_job(server_url, client_env, tmp_path, ECHO_HANDLER)
    session = Session(endpoint_url=server_url)
    transformer = Transformer.attach("job-1", sagemaker_session=session)

    transformer.wait(logs=True)

    printed = capsys.readouterr().out
    assert "/data-log] " in printed and "Container 1 of 1" in printed
    assert (tmp_path / "out" / "a.csv.out").read_text() == "out:1,2\nout:poison\n"
    with pytest.raises(NotFoundError):
        session.logs_for_transform_job("ghost")
