"""What the command line shows: run's summary with the cost, the lists as tables or JSON,
and the record rate the progress bar shows."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from documents import job_request, model_request
from models import ECHO_HANDLER, tar_model, write_model

from batchtransform import cli, pricing
from batchtransform.console import JobFollower, RecordRate

COMMAND = str(Path(sys.executable).parent / "batchtransform")
PRICE = pricing.price_table()["ml.m5.large"].usd_per_hour


def wide() -> dict[str, str]:
    """This test's environment (its own BATCHTRANSFORM_HOME), wide enough that a table's
    cells stay on one line each, to read them."""
    return {**os.environ, "COLUMNS": "200"}


def batchtransform(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command, in a process of its own, its output read through a pipe."""
    return subprocess.run(
        [COMMAND, *args], capture_output=True, text=True, timeout=120, check=False, env=wide()
    )


def at_a_terminal(*args: str) -> str:
    """The command's output when its stdout is a terminal, as a person runs it."""
    leader, follower = pty.openpty()
    with subprocess.Popen([COMMAND, *args], stdout=follower, env=wide()) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when the command ends
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0
    os.close(leader)
    return b"".join(chunks).decode()


def create_model(tmp_path: Path) -> None:
    archive = tar_model(write_model(tmp_path / "src", ECHO_HANDLER), tmp_path / "model.tar.gz")
    model = json.dumps(model_request("m1", archive.as_uri()))
    assert batchtransform("create-model", "--cli-input-json", model).returncode == 0


def test_run_ends_with_records_duration_and_cost(tmp_path: Path) -> None:
    create_model(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("1\n2\n3\n")
    request = job_request(
        input_uri=str(tmp_path / "in"),
        output_path=str(tmp_path / "out"),
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 2},
    )
    ran = batchtransform("run", "--cli-input-json", json.dumps(request))
    assert ran.returncode == 0, ran.stderr
    summary = next(line for line in ran.stdout.splitlines() if line.startswith("job-1:"))
    assert summary.startswith("job-1: Completed · 3 records in ")
    assert " · 2 x ml.m5.large: " in summary and " instance-seconds, $" in summary
    assert f"an always-on endpoint: ${2 * 24 * PRICE:,.2f}/day" in summary
    assert f"${2 * 730 * PRICE:,.2f}/month" in summary
    assert "1/1 objects" in ran.stdout  # the bar's last state, drawn once in a pipe

    listed = batchtransform("list-transform-jobs", "--output", "table")
    assert listed.returncode == 0, listed.stderr
    for cell in ("Name", "Status", "Created", "Progress", "Instances", "job-1", "Completed"):
        assert cell in listed.stdout
    assert "1/1 objects, 3 records" in listed.stdout and "2 x ml.m5.large" in listed.stdout

    as_json = json.loads(batchtransform("list-transform-jobs", "--output", "json").stdout)
    piped = json.loads(batchtransform("list-transform-jobs").stdout)
    assert [s["TransformJobName"] for s in as_json["TransformJobSummaries"]] == ["job-1"]
    assert piped == as_json

    shown = at_a_terminal("list-transform-jobs")
    assert "job-1" in shown and "2 x ml.m5.large" in shown and "{" not in shown


def test_list_models_as_a_table_or_json(tmp_path: Path) -> None:
    create_model(tmp_path)
    table = batchtransform("list-models", "--output", "table").stdout
    for cell in ("Name", "Image", "Created", "m1", "batchtransform/python"):
        assert cell in table
    piped = json.loads(batchtransform("list-models").stdout)
    assert [m["ModelName"] for m in piped["Models"]] == ["m1"]
    assert "batchtransform/python" in at_a_terminal("list-models")


@pytest.mark.parametrize("command", ["list-models", "list-transform-jobs"])
def test_another_output_is_refused_as_the_aws_cli_refuses_it(command: str) -> None:
    refused = batchtransform(command, "--output", "yaml")
    assert refused.returncode == cli.EXIT_USAGE
    assert refused.stderr.startswith(
        "batchtransform: error: argument --output: Invalid choice, valid choices are:"
    )
    assert "json | table" in refused.stderr
    assert refused.stdout == ""


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        ([(0.0, 0)], None),  # one poll: no rate yet
        ([(0.0, 0), (1.0, 10), (2.0, 30)], 15.0),  # within the window: since the first
        ([(0.0, 0), (5.0, 500), (6.0, 510), (10.0, 550)], 10.0),  # slowed: the last 5 s only
    ],
    ids=["one-poll", "within-window", "slowed-down"],
)
def test_the_record_rate_is_over_the_last_seconds(
    seen: list[tuple[float, int]], expected: float | None
) -> None:
    rate = RecordRate(window=5.0)
    for now, records in seen:
        rate.add(now, records)
    assert rate.per_second() == expected


def described(done: int, total: int, records: int, position: int | None = None) -> dict[str, Any]:
    progress: dict[str, Any] = {
        "ObjectsCompleted": done,
        "ObjectsFailed": 0,
        "ObjectsTotal": total,
        "RecordsProcessed": records,
    }
    if position is not None:
        progress["Queued"] = {"Position": position, "Reason": "waits for 2 instances"}
    return {"TransformJobStatus": "InProgress", "Progress": progress}


def test_the_bar_shows_the_queue_then_the_time_left_from_objects() -> None:
    follower = JobFollower()
    queued = follower.fields(described(0, 0, 0, position=3), now=100.0)
    assert queued["status"] == "queued: position 3" and queued["eta"] == ""
    started = follower.fields(described(0, 10, 0), now=110.0)  # its instances start
    assert started["status"] == "" and started["eta"] == "" and started["objects"] == "0/10 objects"
    going = follower.fields(described(2, 10, 400), now=130.0)  # 2 objects in 20 s: 80 s left
    assert going["eta"] == "ETA 0:01:20 (from objects)"
    assert going["records"] == "400 records" and going["rate"] == "20.0 records/s"
    assert follower.fields(described(10, 10, 2000), now=150.0)["eta"] == ""
