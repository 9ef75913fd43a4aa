"""SageMaker framework images in-process: which Images they are, and their default handlers
(scikit-learn with a joblib model, XGBoost boosters, PyTorch with an inference.py of its own)."""

from __future__ import annotations

import importlib.abc
import io
import json
import pickle
import sys
import tarfile
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import xgboost
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from batchtransform.errors import ModelError, RuntimeStartError
from batchtransform.runtimes import create_runtime
from batchtransform.runtimes.base import RuntimeContext
from batchtransform.runtimes.frameworks import (
    PYTORCH,
    SKLEARN,
    XGBOOST,
    Framework,
    FrameworkRuntime,
    framework_for_image,
)

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
XGBOOST_IMAGE = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"
PYTORCH_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310"

IMAGES = [
    ("sklearn us-east-1", SKLEARN_IMAGE, SKLEARN),
    ("sklearn other region and tag", "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:0.23-1-cpu-py3", SKLEARN),
    ("sklearn China", "450853457545.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-scikit-learn:1.0-1", SKLEARN),
    ("xgboost", XGBOOST_IMAGE, XGBOOST),
    ("legacy xgboost algorithm", "811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1", XGBOOST),
    ("xgboost by digest", "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost@sha256:" + "0" * 64, XGBOOST),
    ("pytorch", PYTORCH_IMAGE, PYTORCH),
    ("older pytorch", "520713654638.dkr.ecr.us-west-2.amazonaws.com/sagemaker-pytorch:1.1.0-cpu-py3", PYTORCH),
    ("short sklearn", "sklearn", SKLEARN),
    ("short scikit-learn with tag", "scikit-learn:1.2-1", SKLEARN),
    ("short xgboost", "xgboost", XGBOOST),
    ("repository name alone", "sagemaker-xgboost:1.7-1", XGBOOST),
    ("short pytorch", "pytorch:2.1", PYTORCH),
    ("Docker Hub pytorch", "pytorch/pytorch:latest", None),
    ("another registry", "ghcr.io/someone/sagemaker-xgboost:1", None),
    ("another ECR repository", "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-model:1", None),
    ("a lookalike name", "sagemaker-scikit-learn-extension:1", None),
    ("in-process python", "batchtransform/python", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("image", "framework"), [c[1:] for c in IMAGES], ids=[c[0] for c in IMAGES]
)
def test_which_images_are_framework_images(
    image: str, framework: Framework | None, tmp_path: Path
) -> None:
    assert framework_for_image(image) is framework
    runtime = create_runtime(RuntimeContext(image, tmp_path))
    assert isinstance(runtime, FrameworkRuntime) == (framework is not None)


def model_folder(root: Path, files: Mapping[str, str | bytes]) -> Path:
    folder = root / "model"
    folder.mkdir(exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content))
    return folder


@contextmanager
def running(
    image: str, model_dir: Path, environment: Mapping[str, str] | None = None
) -> Iterator[FrameworkRuntime]:
    runtime = create_runtime(RuntimeContext(image, model_dir, dict(environment or {})))
    assert isinstance(runtime, FrameworkRuntime)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def start_error(image: str, model_dir: Path) -> RuntimeStartError:
    runtime = create_runtime(RuntimeContext(image, model_dir))
    with pytest.raises(RuntimeStartError) as caught:
        runtime.start()
    return caught.value


def csv_of(rows: Any) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()


# scikit-learn: inference.py as written for SageMaker's scikit-learn image (model_fn only)

SKLEARN_INFERENCE = """
import os
import joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


@pytest.fixture(scope="module")
def iris() -> tuple[Any, Any]:
    features, labels = load_iris(return_X_y=True)
    return features, LogisticRegression(max_iter=500).fit(features, labels)


def sklearn_model(root: Path, model: Any, code: Mapping[str, str] | None = None) -> Path:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return model_folder(
        root,
        {"model.joblib": buffer.getvalue(), **(code or {"code/inference.py": SKLEARN_INFERENCE})},
    )


def test_sklearn_decodes_csv_as_float32_predicts_and_writes_csv(
    iris: tuple[Any, Any], tmp_path: Path
) -> None:
    features, model = iris
    with running(SKLEARN_IMAGE, sklearn_model(tmp_path, model)) as runtime:
        body, answered = runtime.invoke_with_type(csv_of(features[:20]), "text/csv", "text/csv")
    expected = model.predict(features[:20].astype(np.float32))
    assert body == "".join(f"{label}\n" for label in expected).encode()
    assert answered == "text/csv"


def test_sklearn_json_in_and_json_out_by_default(iris: tuple[Any, Any], tmp_path: Path) -> None:
    features, model = iris
    with running(SKLEARN_IMAGE, sklearn_model(tmp_path, model)) as runtime:
        body = runtime.invoke(json.dumps(features[:5].tolist()).encode(), "application/json", None)
    assert json.loads(body) == model.predict(features[:5].astype(np.float32)).tolist()


def test_sklearn_squeezes_a_one_row_batch_as_the_container_does(
    iris: tuple[Any, Any], tmp_path: Path
) -> None:
    """sagemaker-containers squeezes CSV to 1-D, so the model sees one row as a 1-D array."""
    features, model = iris
    model_dir = sklearn_model(tmp_path, model)
    expected = pytest.raises(ModelError, match="Expected 2D array, got 1D array")
    with running(SKLEARN_IMAGE, model_dir) as runtime, expected:
        runtime.invoke(csv_of(features[:1]), "text/csv", "text/csv")


def test_sklearn_needs_a_model_fn_as_the_container_does(tmp_path: Path) -> None:
    model_dir = model_folder(
        tmp_path, {"code/inference.py": "def predict_fn(data, model):\n    return data\n"}
    )
    assert "needs a model_fn" in str(start_error(SKLEARN_IMAGE, model_dir))


def test_sklearn_bad_values_are_a_client_error(iris: tuple[Any, Any], tmp_path: Path) -> None:
    model_dir = sklearn_model(tmp_path, iris[1])
    with running(SKLEARN_IMAGE, model_dir) as runtime, pytest.raises(ModelError) as caught:
        runtime.invoke(b"1,2,x,4\n1,2,3,4", "text/csv", None)
    assert caught.value.model_status == 400


def test_sklearn_finds_code_where_the_sdk_points_submit_directory(
    iris: tuple[Any, Any], tmp_path: Path
) -> None:
    features, model = iris
    model_dir = sklearn_model(tmp_path, model, {"code/serve_me.py": SKLEARN_INFERENCE})
    environment = {
        "SAGEMAKER_PROGRAM": "serve_me.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    }
    with running(SKLEARN_IMAGE, model_dir, environment) as runtime:
        assert (
            runtime.invoke(csv_of(features[:3]), "text/csv", "application/json")
            == json.dumps(model.predict(features[:3].astype(np.float32)).tolist()).encode()
        )


def test_sklearn_fetches_a_sourcedir_archive_from_submit_directory(
    iris: tuple[Any, Any], tmp_path: Path
) -> None:
    features, model = iris
    source = tmp_path / "source"
    source.mkdir()
    (source / "inference.py").write_text(textwrap.dedent(SKLEARN_INFERENCE))
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "inference.py", arcname="inference.py")
    instance = tmp_path / "instance"
    instance.mkdir()
    model_dir = sklearn_model(instance, model, {})
    environment = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": archive.as_uri(),
    }
    with running(SKLEARN_IMAGE, model_dir, environment) as runtime:
        assert (
            runtime.invoke(csv_of(features[:2]), "text/csv", "text/csv")
            == "".join(f"{p}\n" for p in model.predict(features[:2].astype(np.float32))).encode()
        )
    assert (instance / "code" / "inference.py").is_file(), (
        "fetched beside the model, as /opt/ml/code"
    )


# XGBoost


@pytest.fixture(scope="module")
def booster() -> Any:
    features = np.random.RandomState(0).rand(60, 3)
    labels = (features[:, 0] > 0.5).astype(float)
    data = xgboost.DMatrix(features, label=labels)
    return xgboost.train({"objective": "binary:logistic", "max_depth": 2}, data, num_boost_round=4)


FEATURES = np.array([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7], [0.6, 0.0, 0.5]])


def xgboost_lines(predictions: Any) -> bytes:
    return "".join(f"{value}\n" for value in predictions.tolist()).encode()


def test_xgboost_algorithm_mode_loads_xgboost_model_and_writes_a_line_each(
    booster: Any, tmp_path: Path
) -> None:
    model_dir = model_folder(tmp_path, {"xgboost-model": pickle.dumps(booster)})
    expected = booster.predict(xgboost.DMatrix(FEATURES))
    with running(XGBOOST_IMAGE, model_dir, {"SAGEMAKER_BATCH": "true"}) as runtime:
        body, answered = runtime.invoke_with_type(csv_of(FEATURES), "text/csv", None)
        assert (body, answered) == (xgboost_lines(expected), "text/csv"), (
            "text/csv is the default Accept"
        )
        assert (
            json.loads(runtime.invoke(csv_of(FEATURES), "text/csv", "application/json"))
            == expected.tolist()
        )
        assert runtime.invoke(b"", "text/csv", None) == b"", "an empty body answers 204"


def test_xgboost_reads_libsvm_and_sniffed_delimiters(booster: Any, tmp_path: Path) -> None:
    model_dir = model_folder(tmp_path, {"model.json": b""})
    booster.save_model(str(model_dir / "model.json"))
    expected = booster.predict(xgboost.DMatrix(FEATURES))
    libsvm = "\n".join(
        "0 " + " ".join(f"{i}:{v!r}" for i, v in enumerate(row)) for row in FEATURES.tolist()
    )
    tabs = "\n".join("\t".join(repr(v) for v in row) for row in FEATURES.tolist())
    with running(XGBOOST_IMAGE, model_dir, {"SAGEMAKER_BATCH": "true"}) as runtime:
        assert runtime.invoke(libsvm.encode(), "text/libsvm", None) == xgboost_lines(expected)
        assert runtime.invoke(
            tabs.encode(), "text/csv; charset=utf-8", "text/csv"
        ) == xgboost_lines(expected)


def test_xgboost_outside_batch_writes_one_comma_separated_line(
    booster: Any, tmp_path: Path
) -> None:
    model_dir = model_folder(tmp_path, {"xgboost-model": pickle.dumps(booster)})
    with running(XGBOOST_IMAGE, model_dir) as runtime:
        body = runtime.invoke(csv_of(FEATURES), "text/csv", "text/csv")
    assert (
        body
        == ",".join(str(v) for v in booster.predict(xgboost.DMatrix(FEATURES)).tolist()).encode()
    )


def test_xgboost_averages_every_model_file(booster: Any, tmp_path: Path) -> None:
    other = xgboost.train(
        {"objective": "binary:logistic"},
        xgboost.DMatrix(FEATURES, label=[1, 0, 1]),
        num_boost_round=2,
    )
    model_dir = model_folder(
        tmp_path, {"a-model": pickle.dumps(booster), "b-model": pickle.dumps(other)}
    )
    matrix = xgboost.DMatrix(FEATURES)
    expected = np.mean([booster.predict(matrix), other.predict(matrix)], axis=0)
    with running(XGBOOST_IMAGE, model_dir, {"SAGEMAKER_BATCH": "true"}) as runtime:
        assert runtime.invoke(csv_of(FEATURES), "text/csv", None) == xgboost_lines(expected)


XGBOOST_ERRORS = [
    ("unsupported content type", b"1,2,3", "application/json", None, 415),
    ("not numbers", b"1,x,3", "text/csv", None, 415),
    ("unsupported accept", b"1,2,3", "text/csv", "application/x-npy", 406),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status"),
    [c[1:] for c in XGBOOST_ERRORS],
    ids=[c[0] for c in XGBOOST_ERRORS],
)
def test_xgboost_errors_carry_the_containers_statuses(
    booster: Any, tmp_path: Path, body: bytes, content_type: str, accept: str | None, status: int
) -> None:
    model_dir = model_folder(tmp_path, {"xgboost-model": pickle.dumps(booster)})
    with running(XGBOOST_IMAGE, model_dir) as runtime, pytest.raises(ModelError) as caught:
        runtime.invoke(body, content_type, accept)
    assert caught.value.model_status == status


def test_xgboost_checks_feature_counts_of_pickled_models(tmp_path: Path) -> None:
    named = xgboost.DMatrix(FEATURES, label=[1, 0, 1], feature_names=["a", "b", "c"])
    model = xgboost.train({"objective": "binary:logistic"}, named, num_boost_round=2)
    model_dir = model_folder(tmp_path, {"xgboost-model": pickle.dumps(model)})
    with running(XGBOOST_IMAGE, model_dir) as runtime:
        assert runtime.invoke(b"0,1,2", "text/csv", None)
        with pytest.raises(
            ModelError, match="Feature size of csv inference data 5 is not consistent"
        ) as caught:
            runtime.invoke(b"1,2,3,4,5", "text/csv", None)
    assert caught.value.model_status == 400


def test_xgboost_with_a_user_module_decodes_to_a_dmatrix(booster: Any, tmp_path: Path) -> None:
    inference = """
    import os
    import xgboost

    def model_fn(model_dir):
        booster = xgboost.Booster()
        booster.load_model(os.path.join(model_dir, "model.json"))
        return booster
    """
    model_dir = model_folder(tmp_path, {"code/inference.py": inference})
    booster.save_model(str(model_dir / "model.json"))
    with running(XGBOOST_IMAGE, model_dir, {"SAGEMAKER_PROGRAM": "inference.py"}) as runtime:
        body = runtime.invoke(csv_of(FEATURES), "text/csv", None)
    assert json.loads(body) == booster.predict(xgboost.DMatrix(FEATURES)).tolist(), (
        "the toolkit's JSON default"
    )


def test_a_missing_xgboost_names_the_extra(
    booster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "xgboost", None)
    model_dir = model_folder(tmp_path, {"xgboost-model": b"anything"})
    assert "pip install 'batchtransform[xgboost]'" in str(start_error(XGBOOST_IMAGE, model_dir))


# PyTorch: an inference.py that brings all its handlers runs without torch installed

PYTORCH_INFERENCE = """
import json

def model_fn(model_dir):
    return lambda rows: [sum(row) for row in rows]

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(data, model):
    return model(data)

def output_fn(prediction, accept):
    return json.dumps(prediction), accept
"""


def test_pytorch_image_runs_an_inference_py_that_brings_its_handlers(tmp_path: Path) -> None:
    model_dir = model_folder(tmp_path, {"code/inference.py": PYTORCH_INFERENCE})
    with running(PYTORCH_IMAGE, model_dir, {"SAGEMAKER_PROGRAM": "inference.py"}) as runtime:
        assert runtime.invoke_with_type(b"[[1, 2], [3, 4]]", "application/json", None) == (
            b"[3, 7]",
            "application/json",
        )


class _Absent(importlib.abc.MetaPathFinder):
    """Makes a package look uninstalled: its import fails as it does where it is missing."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname == self.name or fullname.startswith(self.name + "."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


@pytest.fixture
def without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch is installed for the PyTorch and Hugging Face tests; these check the error a user
    without it gets, so it is made unimportable (and unloaded) for the test's duration."""
    for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_Absent("torch"), *sys.meta_path])


@pytest.mark.usefixtures("without_torch")
def test_pytorch_defaults_without_torch_name_the_extra(tmp_path: Path) -> None:
    model_dir = model_folder(tmp_path, {"model.pt": b"not really"})
    message = str(start_error(PYTORCH_IMAGE, model_dir))
    assert "needs the Python package 'torch'" in message
    assert "pip install 'batchtransform[pytorch]'" in message


@pytest.mark.usefixtures("without_torch")
def test_an_inference_py_that_imports_a_missing_framework_names_the_extra(tmp_path: Path) -> None:
    model_dir = model_folder(tmp_path, {"code/inference.py": "import torch\n" + PYTORCH_INFERENCE})
    message = str(start_error(PYTORCH_IMAGE, model_dir))
    assert "No module named 'torch'" in message
    assert "pip install 'batchtransform[pytorch]'" in message
