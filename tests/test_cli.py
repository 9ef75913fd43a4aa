"""The command line: AWS CLI-shaped commands, their help, exit codes and messages."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from documents import job_request, model_request
from models import ECHO_HANDLER, tar_model, write_model

from batchtransform import cli

COMMANDS = [
    "create-model",
    "describe-model",
    "list-models",
    "delete-model",
    "create-transform-job",
    "describe-transform-job",
    "list-transform-jobs",
    "stop-transform-job",
    "resume-transform-job",
    "run",
    "logs",
    "db",
]


def batchtransform(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command, in a process of its own as a user runs it."""
    command = [str(Path(sys.executable).parent / "batchtransform"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_every_command_has_help_text() -> None:
    parser = cli._parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(COMMANDS) <= set(subcommands.choices)
    for name, command in subcommands.choices.items():
        assert command.description, f"{name} has no help text"
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_malformed_json_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["create-model", "--cli-input-json", "{not json"]) == cli.EXIT_USAGE
    assert "not valid JSON" in capsys.readouterr().err


def test_unreadable_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.json"
    assert cli.main(["create-model", "--cli-input-json", f"file://{missing}"]) == cli.EXIT_USAGE
    assert "cannot read --cli-input-json" in capsys.readouterr().err


def test_service_errors_read_like_the_aws_cli(capsys: pytest.CaptureFixture[str]) -> None:
    request = json.dumps(job_request(model="ghost"))
    assert cli.main(["create-transform-job", "--cli-input-json", request]) == cli.EXIT_SERVICE
    err = capsys.readouterr().err
    assert err.startswith(
        "An error occurred (ValidationException) when calling the CreateTransformJob operation: "
    )
    assert 'Could not find model "arn:aws:sagemaker:us-east-1:000000000000:model/ghost"' in err


def test_flags_override_the_input_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model_request("from-file")))
    assert (
        cli.main(["create-model", "--cli-input-json", f"file://{path}", "--model-name", "flag"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["ModelArn"].endswith(":model/flag")


def test_create_returns_at_once_and_the_job_outlives_the_command(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("1\n2\n")
    archive = tar_model(write_model(tmp_path / "src", ECHO_HANDLER), tmp_path / "model.tar.gz")
    model = tmp_path / "model.json"
    model.write_text(json.dumps(model_request("m1", archive.as_uri())))
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps(job_request(input_uri=str(tmp_path / "in"), output_path=str(tmp_path / "out")))
    )

    assert batchtransform("create-model", "--cli-input-json", f"file://{model}").returncode == 0
    created = batchtransform("create-transform-job", "--cli-input-json", f"file://{job}")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["TransformJobArn"].endswith(":transform-job/job-1")

    followed = batchtransform("logs", "job-1", "--follow")
    assert followed.returncode == 0, followed.stderr
    assert "[sagemaker logs]: MaxConcurrentTransforms=1" in followed.stdout
    described = json.loads(
        batchtransform("describe-transform-job", "--transform-job-name", "job-1").stdout
    )
    assert described["TransformJobStatus"] == "Completed"
    assert (tmp_path / "out" / "a.csv.out").read_text() == "out:1\nout:2\n"
    listed = json.loads(
        batchtransform("list-transform-jobs", "--status-equals", "Completed").stdout
    )
    assert [s["TransformJobName"] for s in listed["TransformJobSummaries"]] == ["job-1"]


@pytest.mark.parametrize(("poison", "code"), [(False, 0), (True, 1)], ids=["completed", "failed"])
def test_run_follows_the_job_and_exits_by_status(tmp_path: Path, poison: bool, code: int) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("1\n")
    handler = ECHO_HANDLER if not poison else "def model_fn(d):\n    raise ValueError('no model')\n"
    archive = tar_model(write_model(tmp_path / "src", handler), tmp_path / "model.tar.gz")
    assert (
        batchtransform(
            "create-model", "--cli-input-json", json.dumps(model_request("m1", archive.as_uri()))
        ).returncode
        == 0
    )
    job = json.dumps(job_request(input_uri=str(tmp_path / "in"), output_path=str(tmp_path / "out")))

    ran = batchtransform("run", "--cli-input-json", job)
    assert ran.returncode == code, ran.stderr
    assert ("Completed" in ran.stdout) is not poison
    if poison:
        assert "no model" in ran.stderr
