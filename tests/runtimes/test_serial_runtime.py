"""Inference pipelines: runtimes in series, content types between them, merged parameters."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from model_server import write_launcher

from batchtransform.errors import ModelError, RuntimeStartError
from batchtransform.runtimes.base import ExecutionParameters, Runtime, RuntimeContext
from batchtransform.runtimes.process import ProcessRuntime
from batchtransform.runtimes.python import PythonRuntime
from batchtransform.runtimes.serial import SerialRuntime, merge_execution_parameters

# Upper-cases the body and says the type it answers with, as an output_fn may.
UPPER = """
def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    text = body.decode() if isinstance(body, bytes) else body
    return text.upper(), "text/x-upper"
"""

# Answers with its body, and no type of its own: the pipeline assumes its default Accept.
PLAIN = """
def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    return body
"""

# Shows what it was sent.
SHOW = """
def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    text = body.decode() if isinstance(body, bytes) else body
    return f"{content_type}|{accept}|{text}"
"""

FAIL = """
def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    raise ValueError("stage two cannot read this")
"""


def python_stage(
    root: Path, name: str, handler: str, environment: dict[str, str] | None = None
) -> PythonRuntime:
    model_dir = root / name / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text(textwrap.dedent(handler))
    return PythonRuntime(
        RuntimeContext("batchtransform/python", model_dir, environment or {}, name=name)
    )


def run(
    stages: list[Runtime], payload: bytes, content_type: str | None, accept: str | None
) -> tuple[bytes, str | None]:
    pipeline = SerialRuntime(stages)
    pipeline.start()
    try:
        return pipeline.invoke_with_type(payload, content_type, accept)
    finally:
        pipeline.stop()


def test_each_response_is_the_next_request_with_its_content_type(tmp_path: Path) -> None:
    stages: list[Runtime] = [
        python_stage(tmp_path, "upper", UPPER),
        python_stage(tmp_path, "show", SHOW),
    ]
    body, answered = run(stages, b"a,b", "text/csv", "application/json")
    assert body == b"text/x-upper|application/json|A,B", (
        "only the last container gets the job's Accept"
    )
    assert answered == "application/json"


def test_a_stage_that_names_no_type_is_taken_to_answer_its_default_accept(tmp_path: Path) -> None:
    first = python_stage(
        tmp_path, "plain", PLAIN, {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}
    )
    stages: list[Runtime] = [first, python_stage(tmp_path, "show", SHOW)]
    body, _ = run(stages, b"1,2", "application/x-custom", None)
    assert body == b"text/csv|application/json|1,2"


def test_a_server_and_an_in_process_stage_in_series(tmp_path: Path) -> None:
    server = ProcessRuntime(
        RuntimeContext(
            f"process://{write_launcher(tmp_path)}",
            tmp_path,
            {"MODEL_SERVER_MODE": "double", "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"},
            name="double",
        )
    )
    stages: list[Runtime] = [server, python_stage(tmp_path, "show", SHOW)]
    body, _ = run(stages, b"1,2\n3,4", "text/csv", "text/csv")
    assert body == b"text/csv|text/csv|2,4\n6,8"


def test_a_failing_stage_is_named_and_keeps_its_status(tmp_path: Path) -> None:
    stages: list[Runtime] = [
        python_stage(tmp_path, "upper", UPPER),
        python_stage(tmp_path, "reader", FAIL),
    ]
    with pytest.raises(ModelError) as caught:
        run(stages, b"x", "text/csv", None)
    assert caught.value.model_status == 500
    assert (
        caught.value.message
        == "container 2 of 2 (reader, batchtransform/python): ValueError: stage two cannot read this"
    )


def test_a_stage_that_does_not_start_stops_the_others(tmp_path: Path) -> None:
    first = python_stage(tmp_path, "upper", UPPER)
    second = python_stage(
        tmp_path, "broken", "def model_fn(model_dir):\n    raise OSError('no weights')\n"
    )
    pipeline = SerialRuntime([first, second])
    with pytest.raises(
        RuntimeStartError,
        match=r"^container 2 of 2 \(broken, batchtransform/python\): model_fn failed: OSError: no weights",
    ):
        pipeline.start()
    with pytest.raises(ModelError, match="not started, or already stopped"):
        first.invoke(b"x", None, None)


P = ExecutionParameters
MERGES = [
    ("none given", [], None),
    ("one", [P(4, "MultiRecord", 6)], P(4, "MultiRecord", 6)),
    ("smallest limits win", [P(8, None, 6), P(2, None, 20)], P(2, None, 6)),
    ("single record if any asks", [P(batch_strategy="MultiRecord"), P(batch_strategy="SingleRecord")], P(batch_strategy="SingleRecord")),
    ("unlimited payload only if all say so", [P(max_payload_in_mb=0), P(max_payload_in_mb=5)], P(max_payload_in_mb=5)),
    ("all unlimited", [P(max_payload_in_mb=0), P(max_payload_in_mb=0)], P(max_payload_in_mb=0)),
    ("zero concurrency means unset", [P(max_concurrent_transforms=0), P(max_concurrent_transforms=3)], P(max_concurrent_transforms=3)),
]  # fmt: skip


@pytest.mark.parametrize(("found", "merged"), [c[1:] for c in MERGES], ids=[c[0] for c in MERGES])
def test_execution_parameters_merge_to_what_every_container_takes(
    found: list[ExecutionParameters], merged: ExecutionParameters | None
) -> None:
    assert merge_execution_parameters(found) == merged
