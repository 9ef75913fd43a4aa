"""Real transform jobs on the Hugging Face image: a tiny random text classifier packed as a
model.tar.gz, MultiRecord JSON Lines (ContentType application/jsonlines, and
application/json as Hugging Face users set it), SingleRecord, a user inference.py, and the
start failures (an unknown HF_TASK, a Hub model with no Hub to reach). Instances load torch
and transformers themselves; nothing leaves the machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from documents import job_request
from runtimes.hf_models import (
    IMAGE,
    TEXTS,
    add_code,
    answer_lines,
    assert_close,
    offline_environment,
    pack,
)
from test_end_to_end import outputs, wait_for, write_inputs

from batchtransform import Session

JSON = "application/json"
JSON_LINES = "application/jsonlines"
# the records of two input files: objects with inputs, and bare strings
INPUTS = {
    "reviews/part-1.jsonl": [{"inputs": text} for text in TEXTS[:4]],
    "reviews/part-2.jsonl": TEXTS[4:],
}


@pytest.fixture
def session() -> Session:
    return Session()


def create_model(
    session: Session,
    tmp_path: Path,
    folder: Path | None,
    environment: dict[str, str] | None = None,
) -> None:
    container: dict[str, Any] = {
        "Image": IMAGE,
        "Environment": {**offline_environment(tmp_path), **(environment or {})},
    }
    if folder is not None:
        container["ModelDataUrl"] = str(pack(folder, tmp_path / "model.tar.gz"))
    session.create_model(ModelName="hf", PrimaryContainer=container)


def run_job(
    session: Session, tmp_path: Path, content_type: str, **overrides: Any
) -> dict[str, Any]:
    files = {
        name: "".join(json.dumps(record) + "\n" for record in records)
        for name, records in INPUTS.items()
    }
    write_inputs(tmp_path / "in", dict(files))
    request = job_request(
        model="hf",
        input_uri=str(tmp_path / "in") + "/",
        output_path=str(tmp_path / "out"),
        TransformInput={"ContentType": content_type, "SplitType": "Line"},
        TransformOutput={"Accept": JSON, "AssembleWith": "Line"},
        **{"BatchStrategy": "MultiRecord", "MaxPayloadInMB": 1, **overrides},
    )
    session.create_transform_job(**request)
    return wait_for(session, request["TransformJobName"])


def text_of(record: Any) -> str:
    return record["inputs"] if isinstance(record, dict) else record


def copy_of(classifier: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for path in classifier.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


@pytest.mark.parametrize("content_type", [JSON_LINES, JSON])
def test_a_multirecord_json_lines_job_answers_a_line_per_record(
    session: Session, classifier: Path, reference: Any, tmp_path: Path, content_type: str
) -> None:
    create_model(session, tmp_path, classifier)  # no HF_TASK: config.json implies it
    description = run_job(session, tmp_path, content_type)
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    written = outputs(tmp_path / "out")
    assert sorted(written) == [f"{name}.out" for name in sorted(INPUTS)]
    labels = set()
    for name, records in INPUTS.items():
        lines = answer_lines(written[f"{name}.out"])
        assert len(lines) == len(records)
        for line, record in zip(lines, records, strict=True):
            assert_close(line, reference(text_of(record)))
            labels.add(line[0]["label"])
    assert labels == {"NEGATIVE", "POSITIVE"}


def test_a_singlerecord_job_answers_each_record_as_the_toolkit_does(
    session: Session, classifier: Path, reference: Any, tmp_path: Path
) -> None:
    create_model(session, tmp_path, classifier, {"HF_TASK": "text-classification"})
    description = run_job(session, tmp_path, JSON, BatchStrategy="SingleRecord")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    written = outputs(tmp_path / "out")
    for name, records in INPUTS.items():
        expected = b"".join(
            json.dumps(reference(text_of(r)), separators=(",", ":")).encode() + b"\n"
            for r in records
        )
        assert written[f"{name}.out"] == expected  # one call per record: the same bytes


USER_CODE = """
    import os
    from transformers import pipeline

    def model_fn(model_dir):
        return pipeline("text-classification", model=model_dir, device=-1)

    def predict_fn(data, model):
        inputs = data.pop("inputs", data)
        parameters = data.pop("parameters", None) or {}
        with open(os.environ["CALLS_FILE"], "a") as calls:
            calls.write(f"{len(inputs)}\\n")
        return model(inputs, **parameters)
"""


def test_a_user_inference_py_gets_each_batch_in_one_predict_fn_call(
    session: Session, classifier: Path, reference: Any, tmp_path: Path
) -> None:
    model = add_code(copy_of(classifier, tmp_path), USER_CODE)
    calls = tmp_path / "calls.txt"
    create_model(session, tmp_path, model, {"CALLS_FILE": str(calls)})
    description = run_job(session, tmp_path, JSON_LINES)
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    sizes = sorted(int(line) for line in calls.read_text().split())
    assert sizes == sorted(len(records) for records in INPUTS.values())  # a call per file
    written = outputs(tmp_path / "out")
    for name, records in INPUTS.items():
        lines = answer_lines(written[f"{name}.out"])
        for line, record in zip(lines, records, strict=True):
            assert_close(line, reference([text_of(record)])[0])


def test_an_unknown_hf_task_fails_the_job_at_start_naming_the_known_tasks(
    session: Session, classifier: Path, tmp_path: Path
) -> None:
    create_model(session, tmp_path, classifier, {"HF_TASK": "sentiment-analyzer"})
    description = run_job(session, tmp_path, JSON_LINES)
    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert "HF_TASK='sentiment-analyzer' is not a task" in reason
    assert "known tasks:" in reason and "sentiment-analysis" in reason
    assert not (tmp_path / "out").exists() or not outputs(tmp_path / "out")


def test_a_hub_model_without_a_reachable_hub_fails_the_job_at_start_saying_so(
    session: Session, tmp_path: Path
) -> None:
    model_id = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
    create_model(
        session, tmp_path, None, {"HF_MODEL_ID": model_id, "HF_TASK": "text-classification"}
    )
    description = run_job(session, tmp_path, JSON_LINES)
    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert f"HF_MODEL_ID={model_id!r} cannot be loaded" in reason
    assert "cannot be reached (HF_HUB_OFFLINE is set)" in reason
