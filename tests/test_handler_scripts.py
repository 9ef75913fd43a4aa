"""Handler scripts written for SageMaker's framework images, as the public examples write
them, run unchanged through real jobs; each output is checked byte for byte against what
the same model computes here. One script per library family: sagemaker_containers (a
scikit-learn featurizer), sagemaker_xgboost_container (XGBoost with libsvm), the
sagemaker_inference toolkit, and the PyTorch image's default handler."""

from __future__ import annotations

import importlib.util
import io
import json
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import xgboost
from handlers import HANDLERS, source
from models import tar_model
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from test_end_to_end import outputs
from test_runtimes_end_to_end import run_job

from batchtransform import Session
from batchtransform.runtimes import compat, create_runtime
from batchtransform.runtimes.base import RuntimeContext

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
PYTORCH_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310"

NUMERIC = [
    "length",
    "diameter",
    "height",
    "whole_weight",
    "shucked_weight",
    "viscera_weight",
    "shell_weight",
]
COLUMNS = ["sex", *NUMERIC]


@pytest.fixture
def session() -> Session:
    return Session()


def abalone(rows: int, seed: int) -> pd.DataFrame:
    """Abalone-shaped records: a sex letter, seven measurements, and rings."""
    generator = np.random.RandomState(seed)
    frame = pd.DataFrame(np.round(generator.rand(rows, 7), 4), columns=NUMERIC)
    frame.insert(0, "sex", generator.choice(["M", "F", "I"], rows))
    frame["rings"] = generator.randint(1, 30, rows)
    return frame


def csv_text(frame: pd.DataFrame) -> str:
    return "".join(",".join(str(v) for v in row) + "\n" for row in frame.itertuples(index=False))


def model_archive(root: Path, name: str, script: str, files: dict[str, bytes]) -> str:
    """A model.tar.gz with the script as code/inference.py beside the model files."""
    folder = root / f"{name}-src"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(source(script))
    for file, content in files.items():
        (folder / file).write_bytes(content)
    return tar_model(folder, root / f"{name}.tar.gz").as_uri()


def container(image: str, archive: str, **environment: str) -> dict[str, Any]:
    return {
        "Image": image,
        "ModelDataUrl": archive,
        "Environment": {
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            **environment,
        },
    }


def joblib_bytes(model: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def featurizer() -> Any:
    train = abalone(200, seed=1)
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    preprocessor = ColumnTransformer([("num", numeric, NUMERIC), ("cat", categorical, ["sex"])])
    return preprocessor.fit(train[COLUMNS])


def csv_rows(array: Any) -> bytes:
    """What csv.writer writes for a float array: str() of each value."""
    return "".join(",".join(str(v) for v in row) + "\n" for row in array).encode()


# sagemaker_containers: the inference-pipeline featurizer


def test_the_sklearn_featurizer_runs_with_sagemaker_containers(
    session: Session, tmp_path: Path, featurizer: Any
) -> None:
    archive = model_archive(
        tmp_path, "featurizer", "sklearn_featurizer.py", {"model.joblib": joblib_bytes(featurizer)}
    )
    session.create_model(ModelName="m1", PrimaryContainer=container(SKLEARN_IMAGE, archive))
    unlabelled, labelled = abalone(30, seed=2), abalone(25, seed=3)
    inputs = {"unlabelled.csv": csv_text(unlabelled[COLUMNS]), "labelled.csv": csv_text(labelled)}
    description = run_job(session, tmp_path, inputs, TransformOutput={"Accept": "text/csv"})

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    with_labels = np.insert(featurizer.transform(labelled[COLUMNS]), 0, labelled["rings"], axis=1)
    assert outputs(tmp_path / "out") == {
        "unlabelled.csv.out": csv_rows(featurizer.transform(unlabelled[COLUMNS])),
        "labelled.csv.out": csv_rows(with_labels),
    }


def test_the_featurizers_json_response_is_one_compact_line(tmp_path: Path, featurizer: Any) -> None:
    folder = tmp_path / "model"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(source("sklearn_featurizer.py"))
    (folder / "model.joblib").write_bytes(joblib_bytes(featurizer))
    records = abalone(3, seed=4)[COLUMNS]
    runtime = create_runtime(RuntimeContext(SKLEARN_IMAGE, folder))
    runtime.start()
    try:
        body, answered = runtime.invoke_with_type(
            csv_text(records).encode(), "text/csv", "application/json"
        )
    finally:
        runtime.stop()
    instances = [{"features": row} for row in featurizer.transform(records).tolist()]
    assert (body, answered) == (json.dumps({"instances": instances}).encode(), "application/json")


# sagemaker_xgboost_container: libsvm in, predictions and SHAP values out


def libsvm_text(features: Any) -> str:
    """1-based indices, as the abalone libsvm files have them: column 0 stays empty."""
    return "".join(
        "0 " + " ".join(f"{i + 1}:{v!r}" for i, v in enumerate(row)) + "\n"
        for row in features.tolist()
    )


def contributions(booster: Any, features: Any) -> bytes:
    matrix = xgboost.DMatrix(features)
    predictions = booster.predict(matrix)
    contribs = booster.predict(matrix, pred_contribs=True, validate_features=False)
    rows = np.hstack((predictions[:, np.newaxis], contribs))
    return "".join(",".join(str(x) for x in row) + "\n" for row in rows).encode()


def test_the_xgboost_script_reads_libsvm_with_the_containers_encoder(
    session: Session, tmp_path: Path
) -> None:
    features = np.round(np.random.RandomState(6).rand(40, 4), 3) + 0.001
    # Trained on 1-based libsvm, the booster's column 0 is never present.
    padded = np.hstack([np.full((120, 1), np.nan), np.random.RandomState(5).rand(120, 4)])
    booster = xgboost.train(
        {"objective": "reg:squarederror", "max_depth": 3},
        xgboost.DMatrix(padded, label=padded[:, 1:] @ [3.0, -1.0, 2.0, 0.5]),
        num_boost_round=8,
    )
    archive = model_archive(
        tmp_path,
        "xgb",
        "xgboost_abalone.py",
        {"xgboost-model": pickle.dumps(booster)},
    )
    session.create_model(ModelName="m1", PrimaryContainer=container(XGBOOST_IMAGE, archive))
    description = run_job(
        session,
        tmp_path,
        {"a.libsvm": libsvm_text(features[:25]), "b.libsvm": libsvm_text(features[25:])},
        TransformInput={"ContentType": "text/libsvm"},
        TransformOutput={"Accept": "text/csv"},
    )

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    with_missing = np.hstack([np.full((40, 1), np.nan), features])
    assert outputs(tmp_path / "out") == {
        "a.libsvm.out": contributions(booster, with_missing[:25]),
        "b.libsvm.out": contributions(booster, with_missing[25:]),
    }


def test_a_pipeline_of_the_featurizer_and_the_xgboost_script(
    session: Session, tmp_path: Path, featurizer: Any
) -> None:
    """Both images' libraries in one instance: the featurizer answers CSV to the XGBoost script."""
    train = abalone(150, seed=7)
    features = featurizer.transform(train[COLUMNS])
    booster = xgboost.train(
        {"objective": "reg:squarederror"},
        xgboost.DMatrix(features, label=train["rings"]),
        num_boost_round=5,
    )
    first = container(
        SKLEARN_IMAGE,
        model_archive(
            tmp_path,
            "featurizer",
            "sklearn_featurizer.py",
            {"model.joblib": joblib_bytes(featurizer)},
        ),
        SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/csv",
    )
    second = container(
        XGBOOST_IMAGE,
        model_archive(
            tmp_path,
            "xgb",
            "xgboost_abalone.py",
            {"xgboost-model": pickle.dumps(booster)},
        ),
    )
    session.create_model(ModelName="m1", Containers=[first, second])
    records = abalone(20, seed=8)[COLUMNS]
    description = run_job(
        session, tmp_path, {"a.csv": csv_text(records)}, TransformOutput={"Accept": "text/csv"}
    )

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert outputs(tmp_path / "out") == {
        "a.csv.out": contributions(booster, featurizer.transform(records))
    }


# sagemaker_inference: the toolkit's decoder, encoder and errors


@pytest.fixture(scope="module")
def classifier() -> tuple[Any, Any]:
    features = np.round(np.random.RandomState(9).rand(90, 4), 3)
    labels = (features[:, 0] + features[:, 2] > 1).astype(int)
    return features, LogisticRegression().fit(features, labels)


def test_a_handler_built_on_the_inference_toolkit(
    session: Session, tmp_path: Path, classifier: tuple[Any, Any]
) -> None:
    features, model = classifier
    archive = model_archive(
        tmp_path, "clf", "inference_toolkit.py", {"model.joblib": joblib_bytes(model)}
    )
    session.create_model(ModelName="m1", PrimaryContainer=container(SKLEARN_IMAGE, archive))
    text = "".join(",".join(str(v) for v in row) + "\n" for row in features[:30].tolist())
    description = run_job(
        session, tmp_path, {"a.csv": text}, TransformOutput={"Accept": "text/csv"}
    )

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    expected = "".join(
        ",".join(str(p) for p in row) + "\n" for row in model.predict_proba(features[:30])
    )
    assert outputs(tmp_path / "out") == {"a.csv.out": expected.encode()}


def test_the_toolkits_errors_keep_their_status(
    session: Session, tmp_path: Path, classifier: tuple[Any, Any]
) -> None:
    archive = model_archive(
        tmp_path, "clf", "inference_toolkit.py", {"model.joblib": joblib_bytes(classifier[1])}
    )
    session.create_model(ModelName="m1", PrimaryContainer=container(SKLEARN_IMAGE, archive))
    description = run_job(session, tmp_path, {"a.csv": "1,2,3\n4,5,6\n"})

    assert description["TransformJobStatus"] == "Failed"
    assert "expected 4 features, got 3" in description["FailureReason"]
    assert "after 1 attempt" in description["FailureReason"], "a 400 is not retried"


# The PyTorch image's default handler


def require_torch() -> Any:
    """torch, which ``make install`` brings with the test extras; missing, the test fails."""
    try:
        import torch
    except ImportError:
        pytest.fail("this test needs torch: install the test extras as `make install` does")
    return torch


def test_a_pytorch_script_with_the_images_default_handler(session: Session, tmp_path: Path) -> None:
    torch = require_torch()
    torch.manual_seed(0)
    network = script_module("pytorch_regressor.py", compat.PYTORCH).Regressor()
    weights = io.BytesIO()
    torch.save(network.state_dict(), weights)
    archive = model_archive(
        tmp_path, "torch", "pytorch_regressor.py", {"model.pth": weights.getvalue()}
    )
    session.create_model(ModelName="m1", PrimaryContainer=container(PYTORCH_IMAGE, archive))
    features = np.round(np.random.RandomState(10).rand(12, 4), 3)
    text = "".join(",".join(str(v) for v in row) + "\n" for row in features.tolist())
    description = run_job(
        session, tmp_path, {"a.csv": text}, TransformOutput={"Accept": "application/json"}
    )

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    with torch.no_grad():
        expected = network.eval()(torch.tensor(features, dtype=torch.float32)).tolist()
    assert outputs(tmp_path / "out") == {"a.csv.out": json.dumps(expected).encode() + b"\n"}


def script_module(script: str, library: str) -> Any:
    """Import a handler script here, with its image's libraries, to build its model."""
    compat.activate([library])
    try:
        spec = importlib.util.spec_from_file_location(Path(script).stem, HANDLERS / script)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        compat.deactivate([library])


# A result that is not bytes: written as each image's server writes it


def test_a_returned_object_is_one_compact_json_line_in_the_sklearn_image(
    session: Session, tmp_path: Path, classifier: tuple[Any, Any]
) -> None:
    features, model = classifier
    archive = model_archive(
        tmp_path, "clf", "returns_a_dict.py", {"model.joblib": joblib_bytes(model)}
    )
    session.create_model(ModelName="m1", PrimaryContainer=container(SKLEARN_IMAGE, archive))
    inputs = {
        "a.csv": "".join(",".join(str(v) for v in row) + "\n" for row in features[:10].tolist())
    }
    description = run_job(session, tmp_path, inputs, TransformOutput={"Accept": "application/json"})

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    predictions = model.predict(features[:10].astype(np.float32)).tolist()
    assert outputs(tmp_path / "out") == {
        "a.csv.out": json.dumps({"predictions": predictions}).encode() + b"\n"
    }


RETURNS_A_DICT = """
def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    return {"rows": body.count("\\n") + 1}, accept
"""

INDENTS = [
    ("scikit-learn writes compact JSON", SKLEARN_IMAGE, b'{"rows": 2}'),
    ("XGBoost writes compact JSON", XGBOOST_IMAGE, b'{"rows": 2}'),
    ("PyTorch's TorchServe indents", PYTORCH_IMAGE, b'{\n  "rows": 2\n}'),
    ("the Python image's model server indents", "batchtransform/python", b'{\n  "rows": 2\n}'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("image", "expected"), [c[1:] for c in INDENTS], ids=[c[0] for c in INDENTS]
)
def test_each_image_writes_a_returned_object_as_its_server_does(
    tmp_path: Path, image: str, expected: bytes
) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text(RETURNS_A_DICT)
    runtime = create_runtime(RuntimeContext(image, tmp_path))
    runtime.start()
    try:
        assert runtime.invoke(b"1,2\n3,4", "text/csv", "application/json") == expected
    finally:
        runtime.stop()
