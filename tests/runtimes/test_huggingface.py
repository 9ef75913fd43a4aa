"""The Hugging Face runtime in-process, on a tiny random text classifier built offline:
which Images it serves, single requests as the toolkit answers them, batches of JSON
records given to the pipeline in one call and answered one line per record, user
handlers, and the start errors (an unknown task, no task to infer)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from runtimes.hf_models import (
    IMAGE,
    TEXTS,
    add_code,
    answer_lines,
    assert_close,
    json_lines,
)

from batchtransform.errors import ModelError, RuntimeStartError
from batchtransform.runtimes import create_runtime
from batchtransform.runtimes.base import Runtime, RuntimeContext
from batchtransform.runtimes.huggingface import HuggingFaceRuntime, is_huggingface_image

JSON = "application/json"
JSON_LINES = "application/jsonlines"

IMAGES = [
    ("us-east-1 with a full tag", IMAGE, True),
    (
        "another account and region",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/huggingface-pytorch-inference:1.13",
        True,
    ),
    (
        "China",
        "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/huggingface-pytorch-inference:2.0",
        True,
    ),
    (
        "by digest",
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference@sha256:"
        + "a" * 64,
        True,
    ),
    ("repository name alone", "huggingface-pytorch-inference:2.1", True),
    ("short name", "huggingface", True),
    ("short name with a tag", "huggingface:latest", True),
    (
        "the TGI image",
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:2.0",
        False,
    ),
    ("another registry", "ghcr.io/someone/huggingface-pytorch-inference:1", False),
    ("Docker Hub", "huggingface/transformers-pytorch-cpu", False),
    (
        "the pytorch image",
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310",
        False,
    ),
]


@pytest.mark.parametrize(("image", "expected"), [c[1:] for c in IMAGES], ids=[c[0] for c in IMAGES])
def test_which_images_are_hugging_face_images(image: str, expected: bool) -> None:
    assert is_huggingface_image(image) is expected
    if expected:
        runtime = create_runtime(RuntimeContext(image=image, model_dir=Path("/nonexistent")))
        assert isinstance(runtime, HuggingFaceRuntime)


@contextmanager
def running(model_dir: Path, environment: dict[str, str] | None = None) -> Iterator[Runtime]:
    runtime = create_runtime(
        RuntimeContext(image=IMAGE, model_dir=model_dir, environment=environment or {})
    )
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def with_code(classifier: Path, tmp_path: Path, handler: str) -> Path:
    """A copy of the classifier's folder with ``code/inference.py``."""
    folder = tmp_path / "model"
    folder.mkdir()
    for path in classifier.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return add_code(folder, handler)


# --- single requests, as the toolkit answers them ------------------------------------------


def test_a_single_request_is_answered_as_the_toolkit_answers_it(
    classifier: Path, reference: Any
) -> None:
    with running(classifier) as runtime:
        body, content_type = runtime.invoke_with_type(b'{"inputs": "good movie"}', JSON, None)
    assert content_type == JSON
    assert json.loads(body) == reference("good movie")  # [{"label": ..., "score": ...}]
    assert b" " not in body and b"\n" not in body  # the toolkit's compact JSON


def test_parameters_reach_the_pipeline_and_a_list_of_inputs_is_one_request(
    classifier: Path, reference: Any
) -> None:
    request = {"inputs": ["good movie", "bad"], "parameters": {"top_k": None}}
    pretty = json.dumps(request, indent=2).encode()  # one JSON document over many lines
    with running(classifier, {"HF_TASK": "sentiment-analysis"}) as runtime:
        body = runtime.invoke(pretty, JSON, JSON)
    assert json.loads(body) == reference(["good movie", "bad"], top_k=None)


def test_csv_with_an_inputs_header_is_read_as_the_toolkit_reads_it(
    classifier: Path, reference: Any
) -> None:
    with running(classifier) as runtime:
        body = runtime.invoke(b"inputs\ngood movie\nbad\n", "text/csv", JSON)
        with pytest.raises(ModelError, match="Header columns") as refused:
            runtime.invoke(b"good movie\n", "text/csv", JSON)
        as_csv = runtime.invoke(b'{"inputs": "bad"}', JSON, "text/csv")
    assert json.loads(body) == reference(["good movie", "bad"])
    assert refused.value.model_status == 400
    assert as_csv.decode().splitlines()[0] == "label,score"


def test_every_handler_error_answers_400_as_the_toolkit_does(classifier: Path) -> None:
    with running(classifier) as runtime:
        with pytest.raises(ModelError, match="parameters must be a JSON object") as bad:
            runtime.invoke(b'{"inputs": "bad", "parameters": 5}', JSON, JSON)
        with pytest.raises(ModelError, match="not supported") as unsupported:
            runtime.invoke(b"x", "application/x-parquet", JSON)
    assert bad.value.model_status == 400 and not bad.value.retryable
    assert unsupported.value.model_status == 400


# --- batches of records ------------------------------------------------------------------

RECORDING_PIPELINE = """
    import os
    from transformers import pipeline
    from transformers.pipelines import TextClassificationPipeline

    class RecordingPipeline(TextClassificationPipeline):
        # writes how many texts each call brings, then classifies as usual
        def __call__(self, inputs, **kwargs):
            count = len(inputs) if isinstance(inputs, list) else 1
            with open(os.environ["CALLS_FILE"], "a") as calls:
                calls.write(f"{count} {kwargs.get('batch_size')}\\n")
            return super().__call__(inputs, **kwargs)

    def model_fn(model_dir):
        return pipeline(
            "text-classification", model=model_dir, pipeline_class=RecordingPipeline, device=-1
        )
"""


def calls_of(path: Path) -> list[tuple[int, str]]:
    return [(int(n), size) for n, size in (line.split() for line in path.read_text().splitlines())]


@pytest.mark.parametrize("content_type", [JSON_LINES, JSON])
def test_a_batch_of_json_lines_is_one_pipeline_call_answered_a_line_per_record(
    classifier: Path, reference: Any, tmp_path: Path, content_type: str
) -> None:
    model = with_code(classifier, tmp_path, RECORDING_PIPELINE)
    calls = tmp_path / "calls.txt"
    records = [{"inputs": text} for text in TEXTS]
    with running(model, {"CALLS_FILE": str(calls)}) as runtime:
        body, answered = runtime.invoke_with_type(json_lines(records), content_type, JSON)
    assert calls_of(calls) == [(len(TEXTS), str(len(TEXTS)))]  # one call, one forward pass
    assert answered == JSON
    lines = answer_lines(body)
    assert len(lines) == len(TEXTS)
    for line, text in zip(lines, TEXTS, strict=True):
        assert_close(line, reference(text))  # the toolkit's answer for that record alone
    labels = {line[0]["label"] for line in lines}
    assert labels == {"NEGATIVE", "POSITIVE"}  # the tiny model tells the texts apart


def test_records_are_called_once_per_set_of_parameters_and_keep_their_order(
    classifier: Path, reference: Any, tmp_path: Path
) -> None:
    model = with_code(classifier, tmp_path, RECORDING_PIPELINE)
    calls = tmp_path / "calls.txt"
    all_labels = {"top_k": None}
    records: list[Any] = [
        {"inputs": TEXTS[0]},
        {"inputs": TEXTS[1], "parameters": all_labels},
        TEXTS[2],  # a bare string is its own inputs
        {"parameters": {"top_k": None}, "inputs": TEXTS[3]},  # key order does not matter
        {"inputs": TEXTS[4]},
    ]
    with running(model, {"CALLS_FILE": str(calls), "BATCHTRANSFORM_HF_BATCH_SIZE": "2"}) as rt:
        body = rt.invoke(json_lines(records), JSON_LINES, JSON)
    assert calls_of(calls) == [(3, "2"), (2, "2")]
    lines = answer_lines(body)
    expected = [
        reference(TEXTS[0]),
        reference(TEXTS[1], top_k=None),
        reference(TEXTS[2]),
        reference(TEXTS[3], top_k=None),
        reference(TEXTS[4]),
    ]
    for line, wanted in zip(lines, expected, strict=True):
        assert_close(line, wanted)


def test_a_record_that_is_not_json_fails_the_batch_naming_its_line(classifier: Path) -> None:
    with running(classifier) as runtime, pytest.raises(ModelError, match="line 2 of the") as bad:
        runtime.invoke(b'{"inputs": "bad"}\nnot json\n', JSON_LINES, JSON)
    assert bad.value.model_status == 400


def test_accept_csv_cannot_hold_a_batch(classifier: Path) -> None:
    with running(classifier) as runtime, pytest.raises(ModelError, match="SingleRecord") as bad:
        runtime.invoke(json_lines(["bad", "good movie"]), JSON_LINES, "text/csv")
    assert bad.value.model_status == 400


USER_PREDICT = """
    import os

    def predict_fn(data, model):
        inputs = data.pop("inputs", data)
        parameters = data.pop("parameters", None) or {}
        with open(os.environ["CALLS_FILE"], "a") as calls:
            calls.write(f"{len(inputs) if isinstance(inputs, list) else 1} -\\n")
        if os.environ.get("ANSWER_ONCE"):
            return "one answer"
        return model(inputs, **parameters)

    def output_fn(prediction, accept):
        return {"user": prediction}
"""


def test_a_user_predict_fn_gets_the_batch_as_a_list(
    classifier: Path, reference: Any, tmp_path: Path
) -> None:
    model = with_code(classifier, tmp_path, USER_PREDICT)
    calls = tmp_path / "calls.txt"
    with running(model, {"CALLS_FILE": str(calls)}) as runtime:
        body = runtime.invoke(json_lines(TEXTS[:3]), JSON_LINES, JSON)
        single = runtime.invoke(json.dumps({"inputs": TEXTS[0]}).encode(), JSON, JSON)
    assert calls_of(calls) == [(3, "-"), (1, "-")]
    lines = answer_lines(body)
    # the pipeline's list answer gives each text its element; output_fn runs per record
    for line, text in zip(lines, TEXTS[:3], strict=True):
        assert_close(line, {"user": reference([text])[0]})
    assert_close(json.loads(single), {"user": reference(TEXTS[0])})


def test_a_user_predict_fn_must_answer_each_input_of_a_batch(
    classifier: Path, tmp_path: Path
) -> None:
    model = with_code(classifier, tmp_path, USER_PREDICT)
    environment = {"CALLS_FILE": str(tmp_path / "calls.txt"), "ANSWER_ONCE": "1"}
    with running(model, environment) as runtime, pytest.raises(ModelError) as bad:
        runtime.invoke(json_lines(TEXTS[:2]), JSON_LINES, JSON)
    assert "predict_fn was given 2 inputs" in bad.value.message
    assert bad.value.model_status == 400


def test_a_user_transform_fn_takes_the_whole_body(classifier: Path, tmp_path: Path) -> None:
    handler = """
        def transform_fn(model, body, content_type, accept):
            return f"{len(body.splitlines())} lines as {content_type}"
    """
    model = with_code(classifier, tmp_path, handler)
    with running(model) as runtime:
        body = runtime.invoke(json_lines(TEXTS), JSON_LINES, JSON)
    assert body == f"{len(TEXTS)} lines as {JSON_LINES}".encode()


# --- start errors ------------------------------------------------------------------------


def start_error(model_dir: Path, environment: dict[str, str] | None = None) -> str:
    with pytest.raises(RuntimeStartError) as failed, running(model_dir, environment):
        pass
    return failed.value.message


def test_an_unknown_task_fails_at_start_naming_it_and_the_known_ones(classifier: Path) -> None:
    message = start_error(classifier, {"HF_TASK": "text-summarisation"})
    assert "HF_TASK='text-summarisation' is not a task that transformers" in message
    assert "text-classification" in message and "fill-mask" in message
    assert "Traceback" not in message


def test_a_task_that_cannot_be_inferred_asks_for_hf_task(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    assert "no config.json to infer the task from" in start_error(tmp_path / "none")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"architectures": ["SomethingNew"]}')
    message = start_error(tmp_path / "odd")
    assert "'SomethingNew'" in message and "set HF_TASK to one of" in message
    (tmp_path / "odd" / "config.json").write_text(
        '{"architectures": ["MyNewModelForMultipleChoice"]}'
    )
    message = start_error(tmp_path / "odd")  # inferred as the toolkit does, but unknown here
    assert "The task 'multiple-choice', inferred from config.json, is not a task" in message


OVERLAP_PROBE = """
    import threading
    import time

    RUNNING = []
    MOST = [0]
    LOCK = threading.Lock()

    def predict_fn(data, model):
        with LOCK:
            RUNNING.append(1)
            MOST[0] = max(MOST[0], len(RUNNING))
        time.sleep(0.05)  # long enough for another thread to come in, were it let in
        with LOCK:
            RUNNING.pop()
        return [MOST[0]]
"""


def test_requests_reach_the_model_one_at_a_time(classifier: Path, tmp_path: Path) -> None:
    """Fast tokenizers fail when two threads use one at once, so concurrent requests
    (MaxConcurrentTransforms) take turns."""
    from concurrent.futures import ThreadPoolExecutor

    model = with_code(classifier, tmp_path, OVERLAP_PROBE)
    with running(model) as runtime, ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: runtime.invoke(b'"x"', JSON, JSON), range(8)))
    assert max(json.loads(body)[0] for body in bodies) == 1


def test_a_missing_transformers_names_the_extra(
    classifier: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # what an import then finds
    message = start_error(classifier)
    assert "pip install 'batchtransform[huggingface]'" in message
    assert "'transformers'" in message
