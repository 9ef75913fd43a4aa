"""Record-level errors in real jobs: bad records left out, named in the errors file, counted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from documents import job_request
from lifecycle import wait_for_end
from models import POISON_HANDLER, echoed
from test_end_to_end import make_model, write_inputs

from batchtransform import Session
from batchtransform.errors import ValidationError
from batchtransform.logs import logs_dir

ROWS = 30
BAD = (4, 17, 18)
A_CSV = "".join(f"poison-{n}\n" if n in BAD else f"{n},{n * n}\n" for n in range(1, ROWS + 1))
B_CSV = "x,1\ny,2\n"


def record_errors_job(
    session: Session,
    tmp_path: Path,
    limit: str,
    environment: dict[str, str] | None = None,
    **overrides: object,
) -> dict[str, object]:
    write_inputs(tmp_path / "in", {"a.csv": A_CSV, "sub/b.csv": B_CSV})
    make_model(session, tmp_path, POISON_HANDLER)
    request = job_request(
        input_uri=str(tmp_path / "in") + "/",
        output_path=(tmp_path / "out").as_uri(),
        Environment={"BATCHTRANSFORM_MAX_FAILED_RECORDS": limit, **(environment or {})},
        ModelClientConfig={"InvocationsMaxRetries": 0},
        TransformResources={"InstanceCount": 2},
        **overrides,
    )
    session.create_transform_job(**request)
    return wait_for_end(session, "job-1")


def test_multirecord_job_leaves_bad_records_out_and_lists_them(
    tmp_path: Path,
) -> None:
    session = Session()
    description = record_errors_job(
        session, tmp_path, "5", BatchStrategy="MultiRecord", MaxConcurrentTransforms=2
    )

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    good = "".join(line + "\n" for line in A_CSV.splitlines() if not line.startswith("poison"))
    assert (tmp_path / "out" / "a.csv.out").read_bytes() == echoed(good)
    assert (tmp_path / "out" / "sub" / "b.csv.out").read_bytes() == echoed(B_CSV)

    errors_file = tmp_path / "out" / "_errors" / "a.csv.errors.jsonl"
    entries = [json.loads(line) for line in errors_file.read_text().splitlines()]
    assert [entry["record"] for entry in entries] == list(BAD)
    for entry, number in zip(entries, BAD, strict=True):
        assert entry["input"] == f"poison-{number}"
        assert "poisoned record" in entry["error"]
        assert f"record {number}" in entry["error"]
    assert not (tmp_path / "out" / "_errors" / "sub").exists(), "no errors, no errors file"

    progress = description["Progress"]
    assert progress["RecordsFailed"] == len(BAD)
    assert progress["RecordsProcessed"] == ROWS + 2
    assert progress["ObjectsCompleted"] == 2


def test_past_the_threshold_the_job_fails_naming_the_count(tmp_path: Path) -> None:
    session = Session()
    description = record_errors_job(session, tmp_path, "2%", BatchStrategy="SingleRecord")

    assert description["TransformJobStatus"] == "Failed"
    reason = str(description["FailureReason"])
    assert reason.startswith("ClientError: 3 records failed of 32, more than the 0 that")
    assert "BATCHTRANSFORM_MAX_FAILED_RECORDS=2%" in reason
    # the objects themselves went through: their outputs and the errors file are there
    errors_file = tmp_path / "out" / "_errors" / "a.csv.errors.jsonl"
    assert [json.loads(line)["record"] for line in errors_file.read_text().splitlines()] == [*BAD]
    assert (tmp_path / "out" / "a.csv.out").exists()


def test_another_errors_prefix_and_unset_behaviour(tmp_path: Path) -> None:
    session = Session()
    write_inputs(tmp_path / "in", {"a.csv": A_CSV})
    make_model(session, tmp_path, POISON_HANDLER)
    base = job_request(
        input_uri=str(tmp_path / "in") + "/",
        ModelClientConfig={"InvocationsMaxRetries": 0},
        BatchStrategy="MultiRecord",
    )
    session.create_transform_job(
        **{
            **base,
            "TransformJobName": "elsewhere",
            "TransformOutput": {"S3OutputPath": str(tmp_path / "out1"), "AssembleWith": "Line"},
            "Environment": {
                "BATCHTRANSFORM_MAX_FAILED_RECORDS": "10",
                "BATCHTRANSFORM_RECORD_ERRORS_PATH": str(tmp_path / "errors"),
            },
        }
    )
    session.create_transform_job(
        **{
            **base,
            "TransformJobName": "unset",
            "TransformOutput": {"S3OutputPath": str(tmp_path / "out2"), "AssembleWith": "Line"},
        }
    )
    assert wait_for_end(session, "elsewhere")["TransformJobStatus"] == "Completed"
    lines = (tmp_path / "errors" / "a.csv.errors.jsonl").read_text().splitlines()
    assert [json.loads(line)["record"] for line in lines] == list(BAD)

    unset = wait_for_end(session, "unset")
    assert unset["TransformJobStatus"] == "Failed", "unset, one bad record fails its object"
    assert not [p for p in (tmp_path / "out2").rglob("*") if p.is_file()]


@pytest.mark.parametrize("value", ["ten", "1.5", "150%"])
def test_a_bad_threshold_is_refused_at_create(tmp_path: Path, value: str) -> None:
    session = Session()
    make_model(session, tmp_path, POISON_HANDLER)
    with pytest.raises(ValidationError, match="BATCHTRANSFORM_MAX_FAILED_RECORDS") as raised:
        session.create_transform_job(
            **job_request(Environment={"BATCHTRANSFORM_MAX_FAILED_RECORDS": value})
        )
    assert raised.value.field == "Environment.BATCHTRANSFORM_MAX_FAILED_RECORDS"


def test_ranges_of_one_object_make_one_errors_file_in_record_order(tmp_path: Path) -> None:
    session = Session()
    description = record_errors_job(
        session,
        tmp_path,
        "5",
        BatchStrategy="MultiRecord",
        environment={"BATCHTRANSFORM_RANGE_SIZE_MB": "0.00005"},  # ranges of about 52 bytes
    )

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    good = "".join(line + "\n" for line in A_CSV.splitlines() if not line.startswith("poison"))
    assert (tmp_path / "out" / "a.csv.out").read_bytes() == echoed(good)
    errors_folder = tmp_path / "out" / "_errors"
    assert [p.name for p in errors_folder.iterdir()] == ["a.csv.errors.jsonl"], "parts joined"
    entries = [
        json.loads(line) for line in (errors_folder / "a.csv.errors.jsonl").read_text().splitlines()
    ]
    assert [(entry["record"], entry["input"]) for entry in entries] == [
        (number, f"poison-{number}") for number in BAD
    ]
    assert description["Progress"]["RecordsFailed"] == len(BAD)
    logged = "".join(p.read_text() for p in logs_dir("job-1").glob("*.data-log"))
    assert len(set(re.findall(r"errors\.jsonl\.part-(\d+)-of", logged))) >= 2, "several ranges"
