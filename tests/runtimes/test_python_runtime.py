"""The in-process Python runtime on real model folders: an inference.py and a joblib model."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from batchtransform.errors import ModelError, RuntimeStartError
from batchtransform.runtimes.base import RuntimeContext
from batchtransform.runtimes.python import PythonRuntime

JOBLIB_MODEL_FN = """
import os
import joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


@dataclass(frozen=True)
class TrainedModel:
    """A scikit-learn model saved with joblib, and what it predicts for the data."""

    path: Path
    features: Any
    predictions: Any


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    features, labels = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    path = tmp_path_factory.mktemp("trained") / "model.joblib"
    joblib.dump(model, path)
    return TrainedModel(path, features, model.predict(features))


def model_folder(root: Path, files: Mapping[str, str], model: TrainedModel | None = None) -> Path:
    """A model artifact as SageMaker unpacks it: files (``code/inference.py``...) and a model."""
    model_dir = root / "model"
    for name, source in files.items():
        path = model_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    model_dir.mkdir(exist_ok=True)
    if model is not None:
        shutil.copy(model.path, model_dir / "model.joblib")
    return model_dir


@contextmanager
def running(
    model_dir: Path, environment: Mapping[str, str] | None = None, log: io.StringIO | None = None
) -> Iterator[PythonRuntime]:
    context = RuntimeContext("batchtransform/python", model_dir, environment or {}, log)
    runtime = PythonRuntime(context)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def start_error(model_dir: Path, environment: Mapping[str, str] | None = None) -> str:
    runtime = PythonRuntime(RuntimeContext("batchtransform/python", model_dir, environment or {}))
    with pytest.raises(RuntimeStartError) as caught:
        runtime.start()
    return caught.value.message


def csv_body(rows: Any) -> bytes:
    return ("\n".join(",".join(repr(float(x)) for x in row) for row in rows) + "\n").encode()


def test_default_chain_predicts_with_the_model(tmp_path: Path, trained: TrainedModel) -> None:
    model_dir = model_folder(tmp_path, {"code/inference.py": JOBLIB_MODEL_FN}, trained)
    with running(model_dir) as runtime:
        body = runtime.invoke(csv_body(trained.features[:50]), "text/csv", None)
        as_csv = runtime.invoke(csv_body(trained.features[:3]), "text/csv", "text/csv")
    assert json.loads(body) == trained.predictions[:50].tolist()
    assert as_csv == "".join(f"{label}\n" for label in trained.predictions[:3]).encode()


def test_default_accept_comes_from_the_environment(tmp_path: Path, trained: TrainedModel) -> None:
    model_dir = model_folder(tmp_path, {"code/inference.py": JOBLIB_MODEL_FN}, trained)
    environment = {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/jsonlines"}
    with running(model_dir, environment) as runtime:
        body = runtime.invoke(csv_body(trained.features[:2]), "text/csv", "*/*")
    assert body == "".join(f"{label}\n" for label in trained.predictions[:2]).encode()


def test_concurrent_invokes_get_their_own_results(tmp_path: Path, trained: TrainedModel) -> None:
    model_dir = model_folder(tmp_path, {"code/inference.py": JOBLIB_MODEL_FN}, trained)
    chunks = [range(start, start + 7) for start in range(0, 560, 7)]
    with running(model_dir) as runtime, ThreadPoolExecutor(max_workers=4) as pool:
        bodies = list(
            pool.map(
                lambda rows: runtime.invoke(csv_body(trained.features[rows]), "text/csv", None),
                chunks,
            )
        )
    for rows, body in zip(chunks, bodies, strict=True):
        assert json.loads(body) == trained.predictions[rows].tolist()


def test_transform_fn_replaces_the_chain(tmp_path: Path, trained: TrainedModel) -> None:
    source = (
        JOBLIB_MODEL_FN
        + """
import json
import numpy as np

def transform_fn(model, input_data, content_type, accept):
    rows = np.array(json.loads(input_data))
    labels = model.predict(rows).tolist()
    if accept == "text/plain":
        return " ".join(map(str, labels))
    return json.dumps({"labels": labels, "input": type(input_data).__name__}), accept
"""
    )
    model_dir = model_folder(tmp_path, {"code/inference.py": source}, trained)
    rows = trained.features[:4].tolist()
    with running(model_dir) as runtime:
        as_tuple = runtime.invoke(json.dumps(rows).encode(), "application/json", None)
        as_str = runtime.invoke(json.dumps(rows).encode(), "application/json", "text/plain")
    expected = trained.predictions[:4].tolist()
    assert json.loads(as_tuple) == {"labels": expected, "input": "str"}
    assert as_str == " ".join(map(str, expected)).encode()


WITH_CONTEXT = """
import json

def model_fn(model_dir, context):
    return {"model_dir": model_dir, "seen_by_model_fn": context.system_properties["model_dir"]}

def input_fn(input_data, content_type, context):
    return {"body_type": type(input_data).__name__, "content_type": content_type,
            "seen_by_input_fn": context.model_dir}

def predict_fn(data, model, context):
    return dict(data, **model, environment=context.environment.get("BT_PYRT_CONTEXT_ENV"))

def output_fn(prediction, accept, context):
    return json.dumps(dict(prediction, accept=accept)), accept
"""

WITHOUT_CONTEXT = """
import json

def model_fn(model_dir):
    return {"model_dir": model_dir}

def input_fn(input_data, content_type):
    return {"body_type": type(input_data).__name__, "content_type": content_type}

def predict_fn(data, model):
    return dict(data, **model)

def output_fn(prediction, accept):
    return json.dumps(dict(prediction, accept=accept)).encode()
"""


@pytest.mark.parametrize(
    ("content_type", "body_type"),
    [
        ("application/json", "str"),
        ("text/csv", "str"),
        ("text/csv; charset=utf-8", "str"),
        ("application/jsonlines", "bytes"),
        ("application/x-npy", "bytes"),
        (None, "bytes"),
    ],
)
@pytest.mark.parametrize("source", [WITH_CONTEXT, WITHOUT_CONTEXT], ids=["context", "no-context"])
def test_user_handlers_get_the_body_as_the_toolkit_gives_it(
    tmp_path: Path, source: str, content_type: str | None, body_type: str
) -> None:
    model_dir = model_folder(tmp_path, {"code/inference.py": source})
    environment = {"BT_PYRT_CONTEXT_ENV": "from-context"}
    with running(model_dir, environment) as runtime:
        result = json.loads(runtime.invoke(b"[1]", content_type, "application/json"))
    assert result["body_type"] == body_type
    assert result["content_type"] == content_type
    assert result["model_dir"] == str(model_dir)
    assert result["accept"] == "application/json"
    if source is WITH_CONTEXT:
        assert result["seen_by_model_fn"] == result["seen_by_input_fn"] == str(model_dir)
        assert result["environment"] == "from-context"


def test_user_handler_with_wrong_arguments_fails_start(tmp_path: Path) -> None:
    source = """
def model_fn(model_dir):
    return None

def input_fn(input_data, content_type, context, extra):
    return input_data
"""
    message = start_error(model_folder(tmp_path, {"code/inference.py": source}))
    assert "input_fn(input_data, content_type, context, extra)" in message
    assert "trailing context" in message


def test_start_and_warmup_hooks_run_in_order(tmp_path: Path) -> None:
    source = """
calls = []

def pre_model_fn(model_dir):
    calls.append("pre_model_fn")

def model_fn(model_dir):
    calls.append("model_fn")
    return calls

def model_warmup_fn(model_dir, model):
    model.append("model_warmup_fn")

def predict_fn(data, model):
    return model
"""
    with running(model_folder(tmp_path, {"code/inference.py": source})) as runtime:
        body = runtime.invoke(b"[]", "application/json", None)
    assert json.loads(body) == ["pre_model_fn", "model_fn", "model_warmup_fn"]


@pytest.mark.parametrize("program", ["serve.py", "serve", "ABSOLUTE"])
def test_sagemaker_program_names_the_module(
    tmp_path: Path, trained: TrainedModel, program: str
) -> None:
    model_dir = model_folder(tmp_path, {"code/serve.py": JOBLIB_MODEL_FN}, trained)
    if program == "ABSOLUTE":
        program = str(model_dir / "code" / "serve.py")
    with running(model_dir, {"SAGEMAKER_PROGRAM": program}) as runtime:
        body = runtime.invoke(csv_body(trained.features[:2]), "text/csv", None)
    assert json.loads(body) == trained.predictions[:2].tolist()


def test_helper_modules_in_code_import(tmp_path: Path, trained: TrainedModel) -> None:
    files = {
        "code/inference.py": """
            from bt_pyrt_helper import load, scale

            def model_fn(model_dir):
                return load(model_dir)

            def predict_fn(data, model):
                return scale(model.predict(data))
            """,
        "code/bt_pyrt_helper.py": JOBLIB_MODEL_FN.replace("model_fn", "load")
        + "\ndef scale(labels):\n    return labels * 10\n",
    }
    model_dir = model_folder(tmp_path, files, trained)
    with running(model_dir) as runtime:
        body = runtime.invoke(csv_body(trained.features[:3]), "text/csv", None)
        assert "bt_pyrt_helper" in sys.modules
    assert json.loads(body) == (trained.predictions[:3] * 10).tolist()
    assert "bt_pyrt_helper" not in sys.modules


def test_missing_inference_py_fails_start_clearly(tmp_path: Path, trained: TrainedModel) -> None:
    model_dir = model_folder(tmp_path, {}, trained)
    message = start_error(model_dir)
    assert "code/inference.py" in message and "model_fn" in message
    assert f"{model_dir / 'code' / 'inference.py'} does not exist" in message


def test_missing_program_names_where_it_looked(tmp_path: Path) -> None:
    message = start_error(model_folder(tmp_path, {}), {"SAGEMAKER_PROGRAM": "other.py"})
    assert "other.py does not exist" in message and "SAGEMAKER_PROGRAM" in message


def test_module_without_model_fn_fails_start(tmp_path: Path) -> None:
    source = "def predict_fn(data, model):\n    return data\n"
    message = start_error(model_folder(tmp_path, {"code/inference.py": source}))
    assert "inference.py defines none" in message


def test_model_fn_raising_fails_start_with_its_traceback(tmp_path: Path) -> None:
    source = """
def model_fn(model_dir):
    return load_weights(model_dir)

def load_weights(model_dir):
    raise FileNotFoundError("weights.bin is missing from " + model_dir)
"""
    model_dir = model_folder(tmp_path, {"code/inference.py": source})
    log = io.StringIO()
    runtime = PythonRuntime(RuntimeContext("batchtransform/python", model_dir, {}, log))
    with pytest.raises(RuntimeStartError) as caught:
        runtime.start()
    message = caught.value.message
    assert message.startswith("model_fn failed: FileNotFoundError: weights.bin is missing from")
    assert "in load_weights" in message  # the frames of the user's code
    assert "in load_weights" in log.getvalue()


def test_import_error_fails_start_and_cleans_up(tmp_path: Path) -> None:
    model_dir = model_folder(tmp_path, {"code/inference.py": "import bt_pyrt_no_such_package\n"})
    message = start_error(model_dir)
    assert "importing" in message and "ModuleNotFoundError" in message
    assert str(model_dir / "code") not in sys.path
    assert not [name for name in sys.modules if name.startswith("_batchtransform_user_")]


def test_transform_fn_with_predict_fn_fails_start(tmp_path: Path) -> None:
    source = """
def model_fn(model_dir):
    return None

def transform_fn(model, input_data, content_type, accept):
    return input_data

def predict_fn(data, model):
    return data
"""
    message = start_error(model_folder(tmp_path, {"code/inference.py": source}))
    assert "transform_fn together with predict_fn" in message


def test_predict_raising_is_a_model_error_with_traceback(tmp_path: Path) -> None:
    source = """
def model_fn(model_dir):
    return None

def predict_fn(data, model):
    raise ValueError("features must be positive")
"""
    log = io.StringIO()
    with (
        running(model_folder(tmp_path, {"code/inference.py": source}), log=log) as runtime,
        pytest.raises(ModelError) as caught,
    ):
        runtime.invoke(b"[1]", "application/json", None)
    error = caught.value
    assert error.model_status == 500 and error.retryable
    assert error.message == "ValueError: features must be positive"
    assert error.body.startswith("features must be positive\nTraceback (most recent call last):")
    assert "in predict_fn" in error.body and "in predict_fn" in log.getvalue()


def test_exception_status_code_sets_the_status(tmp_path: Path) -> None:
    source = """
class BadInput(Exception):
    def __init__(self, message):
        super().__init__(400, message, "Bad Request")
        self.status_code = 400
        self.message = message

def model_fn(model_dir):
    return None

def input_fn(input_data, content_type):
    raise BadInput("expected 30 features")
"""
    with (
        running(model_folder(tmp_path, {"code/inference.py": source})) as runtime,
        pytest.raises(ModelError) as caught,
    ):
        runtime.invoke(b"1,2", "text/csv", None)
    assert caught.value.model_status == 400 and not caught.value.retryable
    assert caught.value.message == "BadInput: expected 30 features"


@pytest.mark.parametrize(
    ("content_type", "accept", "status"),
    [("text/libsvm", None, 415), ("text/csv", "image/png", 406)],
)
def test_default_codecs_report_unsupported_types(
    tmp_path: Path, trained: TrainedModel, content_type: str, accept: str | None, status: int
) -> None:
    model_dir = model_folder(tmp_path, {"code/inference.py": JOBLIB_MODEL_FN}, trained)
    with running(model_dir) as runtime, pytest.raises(ModelError) as caught:
        runtime.invoke(csv_body(trained.features[:2]), content_type, accept)
    assert caught.value.model_status == status


def test_model_without_predict_needs_predict_fn(tmp_path: Path) -> None:
    source = "def model_fn(model_dir):\n    return 42\n"
    with (
        running(model_folder(tmp_path, {"code/inference.py": source})) as runtime,
        pytest.raises(ModelError, match="define predict_fn") as caught,
    ):
        runtime.invoke(b"[1]", "application/json", None)
    assert caught.value.model_status == 500


def test_callable_model_is_called(tmp_path: Path) -> None:
    source = "def model_fn(model_dir):\n    return lambda data: data * 2\n"
    with running(model_folder(tmp_path, {"code/inference.py": source})) as runtime:
        body = runtime.invoke(b"[1, 2]", "application/json", None)
    assert json.loads(body) == [2, 4]


def test_environment_is_applied_then_restored(tmp_path: Path) -> None:
    source = """
import os

def model_fn(model_dir):
    return os.environ["BT_PYRT_MARKER"]

def predict_fn(data, model):
    return {"at_load": model, "at_request": os.environ["BT_PYRT_MARKER"]}
"""
    model_dir = model_folder(tmp_path, {"code/inference.py": source})
    assert "BT_PYRT_MARKER" not in os.environ
    with running(model_dir, {"BT_PYRT_MARKER": "job value"}) as runtime:
        body = runtime.invoke(b"[]", "application/json", None)
    assert json.loads(body) == {"at_load": "job value", "at_request": "job value"}
    assert "BT_PYRT_MARKER" not in os.environ


def test_stop_forgets_the_module_and_is_idempotent(tmp_path: Path) -> None:
    source = "def model_fn(model_dir):\n    return lambda data: data\n"
    model_dir = model_folder(tmp_path, {"code/inference.py": source})
    runtime = PythonRuntime(RuntimeContext("batchtransform/python", model_dir, {}))
    modules_before = set(sys.modules)
    runtime.start()
    assert str(model_dir / "code") in sys.path
    assert len(set(sys.modules) - modules_before) == 1
    runtime.stop()
    runtime.stop()
    assert str(model_dir / "code") not in sys.path
    assert not [name for name in sys.modules if name.startswith("_batchtransform_user_")]
    with pytest.raises(ModelError, match="not started") as caught:
        runtime.invoke(b"[]", "application/json", None)
    assert caught.value.model_status == 503


def test_output_that_is_not_bytes_is_written_as_json(tmp_path: Path) -> None:
    source = """
import numpy as np

def model_fn(model_dir):
    return None

def transform_fn(model, input_data, content_type, accept):
    return {"scores": np.array([0.5, 1.0])}
"""
    with running(model_folder(tmp_path, {"code/inference.py": source})) as runtime:
        body = runtime.invoke(b"[]", "application/json", None)
    assert json.loads(body) == {"scores": [0.5, 1.0]}


def test_non_utf8_text_body_is_a_400(tmp_path: Path) -> None:
    source = """
def model_fn(model_dir):
    return None

def input_fn(input_data, content_type):
    return input_data
"""
    with (
        running(model_folder(tmp_path, {"code/inference.py": source})) as runtime,
        pytest.raises(ModelError) as caught,
    ):
        runtime.invoke(b"\xff\xfe", "text/csv", None)
    assert caught.value.model_status == 400


def test_default_predict_reads_a_single_csv_row_as_one_row(tmp_path: Path) -> None:
    """SingleRecord sends one CSV line; it decodes 1-D, and the default predict still works."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    features, labels = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(features, labels)
    folder = tmp_path / "model"
    (folder / "code").mkdir(parents=True)
    joblib.dump(model, folder / "model.joblib")
    (folder / "code" / "inference.py").write_text(
        "import joblib, os\n\ndef model_fn(d):\n    return joblib.load(os.path.join(d, 'model.joblib'))\n"
    )
    runtime = PythonRuntime(RuntimeContext(image="batchtransform/python", model_dir=folder))
    runtime.start()
    try:
        row = ",".join(map(str, features[0])).encode()
        answer = runtime.invoke(row, "text/csv", "text/csv")
        assert answer.decode().split() == [str(model.predict(features[:1])[0])]
        two_rows = row + b"\n" + ",".join(map(str, features[1])).encode()
        assert len(runtime.invoke(two_rows, "text/csv", "text/csv").decode().split()) == 2
    finally:
        runtime.stop()
