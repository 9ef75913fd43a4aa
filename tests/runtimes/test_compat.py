"""The stand-ins for the framework images' libraries: visible only while activated, an
installed original wins, and their functions behave as the originals document them."""

from __future__ import annotations

import importlib
import io
import json
import pickle
import struct
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import xgboost

from batchtransform.runtimes import compat

ALL = (compat.CONTAINERS, compat.XGBOOST, compat.PYTORCH)
NAMES = (
    "sagemaker_containers",
    "sagemaker_xgboost_container",
    "sagemaker_pytorch_serving_container",
)


@pytest.fixture
def active() -> Iterator[None]:
    compat.activate(ALL)
    try:
        yield
    finally:
        compat.deactivate(ALL)


def module(name: str) -> ModuleType:
    return importlib.import_module(name)


def test_the_stand_ins_are_importable_only_while_active() -> None:
    for name in NAMES:
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)
    compat.activate(ALL)
    try:
        for name in NAMES[:2]:
            assert module(name).__file__.startswith(str(Path(compat.__file__).parent))
    finally:
        compat.deactivate(ALL)
    assert not any(name.startswith(NAMES) for name in sys.modules), "modules forgotten"
    assert not any(str(Path(compat.__file__).parent) in entry for entry in sys.path)
    for name in NAMES:
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)


def test_two_users_share_a_folder_until_the_last_one_leaves() -> None:
    compat.activate([compat.CONTAINERS])
    compat.activate([compat.CONTAINERS])
    compat.deactivate([compat.CONTAINERS])
    assert (
        module("sagemaker_containers.beta.framework").encoders.encode([1], "application/json")
        == "[1]"
    )
    compat.deactivate([compat.CONTAINERS])
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("sagemaker_containers")


def test_an_installed_original_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = tmp_path / "site" / "sagemaker_containers"
    original.mkdir(parents=True)
    (original / "__init__.py").write_text("ORIGINAL = True\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    compat.activate([compat.CONTAINERS])
    try:
        assert module("sagemaker_containers").ORIGINAL is True
    finally:
        compat.deactivate([compat.CONTAINERS])
        sys.modules.pop("sagemaker_containers", None)


def test_an_unknown_folder_is_refused() -> None:
    with pytest.raises(ValueError, match="no compatibility folder 'nope'"):
        compat.activate(["nope"])


# sagemaker_containers.beta.framework

CSV_DECODES = [
    ("rows of numbers", "1,2\n3,4", np.array([[1.0, 2.0], [3.0, 4.0]]), np.float64),
    ("one row is squeezed to 1-D", "1,2,3", np.array([1.0, 2.0, 3.0]), np.float64),
    ("one value is 0-D", "7", np.array(7.0), np.float64),
    ("quoted fields", '"1","2"', np.array([1.0, 2.0]), np.float64),
    ("bytes are text", b"5,6", np.array([5.0, 6.0]), np.float64),
    ("strings stay strings", "a,2\nb,3", np.array([["a", "2"], ["b", "3"]]), np.str_),
]  # fmt: skip


@pytest.mark.usefixtures("active")
@pytest.mark.parametrize(
    ("body", "expected", "kind"), [c[1:] for c in CSV_DECODES], ids=[c[0] for c in CSV_DECODES]
)
def test_containers_csv_to_numpy(body: str | bytes, expected: Any, kind: type) -> None:
    encoders = module("sagemaker_containers.beta.framework").encoders
    decoded = encoders.csv_to_numpy(body)
    assert decoded.shape == expected.shape
    assert np.issubdtype(decoded.dtype, kind)
    assert (decoded == expected).all()
    assert (encoders.decode(body, "text/csv") == expected).all()


ROUND_TRIPS = [
    ("json 2-D", "application/json", [[1.5, 2.0], [3.0, 4.25]], "[[1.5, 2.0], [3.0, 4.25]]"),
    ("json numpy ints", "application/json", np.array([1, 2, 3]), "[1, 2, 3]"),
    ("json object", "application/json", {"a": np.float64(0.5)}, '{"a": 0.5}'),
    ("csv 2-D", "text/csv", np.array([[1.5, 2.0], [3.0, 4.0]]), "1.5,2.0\n3.0,4.0\n"),
    ("csv 1-D is a column", "text/csv", np.array([1, 2]), "1\n2\n"),
    ("csv quotes commas", "text/csv", np.array([["a,b", "c"]]), '"a,b",c\n'),
    ("content type parameters", "text/csv; charset=utf-8", [[1, 2]], "1,2\n"),
]  # fmt: skip


@pytest.mark.usefixtures("active")
@pytest.mark.parametrize(
    ("content_type", "value", "encoded"),
    [c[1:] for c in ROUND_TRIPS],
    ids=[c[0] for c in ROUND_TRIPS],
)
def test_containers_encode_writes_as_the_original(
    content_type: str, value: Any, encoded: str
) -> None:
    encoders = module("sagemaker_containers.beta.framework").encoders
    assert encoders.encode(value, content_type) == encoded
    if not isinstance(value, dict) and "quotes" not in content_type:
        decoded = encoders.decode(encoded, content_type)
        assert np.array_equal(
            decoded.reshape(np.asarray(value).shape), np.asarray(value, dtype=decoded.dtype)
        )


@pytest.mark.usefixtures("active")
def test_containers_npy_round_trip_and_pickles_refused() -> None:
    encoders = module("sagemaker_containers.beta.framework").encoders
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    body = encoders.encode(array, "application/x-npy")
    assert isinstance(body, bytes)
    decoded = encoders.decode(body, "application/x-npy")
    assert decoded.dtype == np.int32 and np.array_equal(decoded, array)
    with pytest.raises(ValueError, match="allow_pickle"):
        encoders.npy_to_numpy(encoders.array_to_npy(np.array([{"a": 1}], dtype=object)))


UNSUPPORTED = [
    ("decode", "application/x-image", 415),
    ("decode", None, 415),
    ("encode", "text/html", 406),
]  # fmt: skip


@pytest.mark.usefixtures("active")
@pytest.mark.parametrize(("function", "content_type", "status"), UNSUPPORTED)
def test_containers_unsupported_types_raise_unsupported_format_error(
    function: str, content_type: str | None, status: int
) -> None:
    framework = module("sagemaker_containers.beta.framework")
    with pytest.raises(framework.errors.UnsupportedFormatError) as caught:
        getattr(framework.encoders, function)(b"1", content_type)
    assert f"Content type {content_type} is not supported by this framework" in caught.value.message
    assert caught.value.status_code == status


@pytest.mark.usefixtures("active")
def test_containers_csv_with_a_dtype_that_does_not_fit_is_a_client_error() -> None:
    framework = module("sagemaker_containers.beta.framework")
    with pytest.raises(framework.errors.ClientError, match="dtype is: float32"):
        framework.encoders.csv_to_numpy("a,b", dtype="float32")


@pytest.mark.usefixtures("active")
def test_containers_worker_response() -> None:
    worker = module("sagemaker_containers.beta.framework").worker
    response = worker.Response("1,2\n", mimetype="text/csv")
    assert (response.get_data(), response.get_data(as_text=True), response.data) == (
        b"1,2\n",
        "1,2\n",
        b"1,2\n",
    )
    assert (response.status_code, response.status, response.mimetype) == (200, "200 OK", "text/csv")
    assert response.content_type == "text/csv; charset=utf-8"
    default = worker.Response(b"{}")
    assert (default.mimetype, default.content_type) == ("application/json", "application/json")
    failed = worker.Response(["no", b"pe"], status="418 I'M A TEAPOT")
    assert (failed.status_code, failed.get_data()) == (418, b"nope")
    assert worker.Response(status=500).status == "500 Internal Server Error"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker.Response("x", "text/csv", mimetype="text/csv")
    assert [w.category for w in caught] == [DeprecationWarning]
    with pytest.raises(TypeError, match="str, bytes or an iterable"):
        worker.Response(3.5)


@pytest.mark.usefixtures("active")
def test_containers_env_and_transformer_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    framework = module("sagemaker_containers.beta.framework")
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "featurizer.py")
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path))
    serving = framework.env.ServingEnv()
    assert (serving.module_name, serving.user_entry_point) == ("featurizer", "featurizer.py")
    assert (serving.default_accept, serving.model_dir, serving.http_port) == (
        "text/csv",
        str(tmp_path),
        "8080",
    )
    assert serving.num_cpus >= 1 and serving.num_gpus >= 0
    response = framework.transformer.default_output_fn(np.array([[1, 2]]), "text/csv")
    assert (response.get_data(), response.mimetype) == (b"1,2\n", "text/csv")
    assert (framework.transformer.default_input_fn("1,2", "text/csv") == [1.0, 2.0]).all()
    with pytest.raises(NotImplementedError, match="provide a model_fn"):
        framework.transformer.default_model_fn(str(tmp_path))
    assert framework.modules.exists("json") and not framework.modules.exists("no_such_module_here")
    assert framework.content_types.UTF8_TYPES == ["application/json", "text/csv"]


# sagemaker_xgboost_container

FEATURES = np.array([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7], [0.6, 0.0, 0.5]])


@pytest.fixture(scope="module")
def booster() -> Any:
    features = np.random.RandomState(0).rand(60, 3)
    data = xgboost.DMatrix(features, label=(features[:, 0] > 0.5).astype(float))
    return xgboost.train({"objective": "binary:logistic", "max_depth": 2}, data, num_boost_round=4)


def predictions(booster: Any, matrix: Any) -> list[float]:
    return booster.predict(matrix, validate_features=False).tolist()


CSV_BODIES = [
    ("commas", "0.1,0.2,0.3\n0.9,0.8,0.7\n0.6,0.0,0.5"),
    ("tabs are sniffed", "0.1\t0.2\t0.3\n0.9\t0.8\t0.7\n0.6\t0.0\t0.5"),
    ("bytes", b"0.1,0.2,0.3\n0.9,0.8,0.7\n0.6,0.0,0.5"),
]  # fmt: skip


@pytest.mark.usefixtures("active")
@pytest.mark.parametrize("body", [c[1] for c in CSV_BODIES], ids=[c[0] for c in CSV_BODIES])
def test_xgboost_csv_to_dmatrix(booster: Any, body: str | bytes) -> None:
    encoder = module("sagemaker_xgboost_container.encoder")
    matrix = encoder.csv_to_dmatrix(body)
    assert (matrix.num_row(), matrix.num_col()) == (3, 3)
    assert predictions(booster, matrix) == predictions(booster, xgboost.DMatrix(FEATURES))


@pytest.mark.usefixtures("active")
def test_xgboost_csv_empty_fields_are_missing_and_one_column_reads() -> None:
    encoder = module("sagemaker_xgboost_container.encoder")
    matrix = encoder.csv_to_dmatrix("1,,3\n4,5,6")
    assert np.isnan(matrix.get_data().toarray()).sum() == 0, "missing values are not stored"
    assert matrix.get_data().nnz == 5
    assert encoder.csv_to_dmatrix("1\n2\n3").num_row() == 3


LIBSVM_BODIES = [
    ("bytes", b"1 0:0.1 1:0.2 2:0.3\n0 0:0.9 1:0.8 2:0.7\n1 0:0.6 1:0.0 2:0.5\n"),
    ("str", "1 0:0.1 1:0.2 2:0.3\n0 0:0.9 1:0.8 2:0.7\n1 0:0.6 1:0.0 2:0.5"),
]  # fmt: skip


@pytest.mark.usefixtures("active")
@pytest.mark.parametrize("body", [c[1] for c in LIBSVM_BODIES], ids=[c[0] for c in LIBSVM_BODIES])
def test_xgboost_libsvm_to_dmatrix_keeps_labels(booster: Any, body: bytes | str) -> None:
    encoder = module("sagemaker_xgboost_container.encoder")
    matrix = encoder.libsvm_to_dmatrix(body)
    assert matrix.get_label().tolist() == [1.0, 0.0, 1.0]
    assert predictions(booster, matrix) == predictions(booster, xgboost.DMatrix(FEATURES))
    decoded = encoder.decode(body, "text/x-libsvm; charset=utf-8")
    assert predictions(booster, decoded) == predictions(booster, matrix)


def protobuf_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def protobuf_field(number: int, payload: bytes) -> bytes:
    return protobuf_varint(number << 3 | 2) + protobuf_varint(len(payload)) + payload


def protobuf_record(
    values: list[float], keys: list[int] | None = None, shape: int | None = None
) -> bytes:
    """A Record with features["values"] a Float32Tensor and a label, per SageMaker's schema."""
    tensor = protobuf_field(1, struct.pack(f"<{len(values)}f", *values))
    if keys is not None:
        tensor += protobuf_field(2, b"".join(map(protobuf_varint, keys)))
    if shape is not None:
        tensor += protobuf_field(3, protobuf_varint(shape))
    value = protobuf_field(2, tensor)
    label = protobuf_field(
        2, protobuf_field(1, protobuf_field(2, protobuf_field(1, struct.pack("<f", 1.0))))
    )
    return protobuf_field(1, protobuf_field(1, b"values") + protobuf_field(2, value)) + label


def recordio(records: list[bytes]) -> bytes:
    out = io.BytesIO()
    for record in records:
        out.write(struct.pack("<II", 0xCED7230A, len(record)) + record + b"\0" * (-len(record) % 4))
    return out.getvalue()


# One Record, features {"values": Float32Tensor(values=[1.0, 2.0])}, framed, written out by hand.
HAND_MADE = bytes.fromhex(
    "0a23d7ce180000000a160a06" + b"values".hex() + "120c120a0a080000803f00000040"
)


@pytest.mark.usefixtures("active")
def test_xgboost_recordio_protobuf_dense_and_sparse(booster: Any) -> None:
    encoder = module("sagemaker_xgboost_container.encoder")
    assert encoder.recordio_protobuf_to_dmatrix(HAND_MADE).get_data().toarray().tolist() == [
        [1.0, 2.0]
    ]
    dense = recordio([protobuf_record(np.float32(row).tolist()) for row in FEATURES])
    matrix = encoder.decode(dense, "application/x-recordio-protobuf")
    expected = predictions(booster, xgboost.DMatrix(FEATURES.astype(np.float32)))
    assert predictions(booster, matrix) == expected
    sparse = recordio(
        [
            protobuf_record([0.5], keys=[2], shape=3),
            protobuf_record([0.25, 0.75], keys=[0, 1], shape=3),
        ]
    )
    assert encoder.recordio_protobuf_to_dmatrix(sparse).get_data().toarray().tolist() == [
        [0, 0, 0.5],
        [0.25, 0.75, 0],
    ]
    with pytest.raises(ValueError, match="no 'values' feature"):
        encoder.recordio_protobuf_to_dmatrix(recordio([protobuf_field(3, b"uid")]))


@pytest.mark.usefixtures("active")
def test_xgboost_decode_refuses_other_types_and_json_to_jsonlines() -> None:
    encoder = module("sagemaker_xgboost_container.encoder")
    errors = module("sagemaker_containers.beta.framework").errors
    with pytest.raises(errors.UnsupportedFormatError, match="application/json is not supported"):
        encoder.decode("[1]", "application/json")
    assert (
        encoder.json_to_jsonlines({"predictions": [{"score": 1}, {"score": 2}]})
        == b'{"score": 1}\n{"score": 2}\n'
    )
    with pytest.raises(ValueError, match="not compatible"):
        encoder.json_to_jsonlines('{"a": [], "b": []}')


DATA_UTILS = [
    (None, "libsvm"), ("text/csv", "csv"), ("csv", "csv"), ("text/csv; label_size=1", "csv"),
    ("text/x-libsvm", "libsvm"), ("application/x-recordio-protobuf", "recordio-protobuf"),
    ("application/x-parquet", "parquet"),
]  # fmt: skip


@pytest.mark.usefixtures("active")
@pytest.mark.parametrize(("content_type", "short"), DATA_UTILS)
def test_xgboost_data_utils_content_types(content_type: str | None, short: str) -> None:
    assert module("sagemaker_xgboost_container.data_utils").get_content_type(content_type) == short


@pytest.mark.usefixtures("active")
def test_xgboost_data_utils_refuses_bad_content_types() -> None:
    data_utils = module("sagemaker_xgboost_container.data_utils")
    with pytest.raises(data_utils.UserError, match="label_size must be equal to 1"):
        data_utils.get_content_type("text/csv; label_size=2")
    with pytest.raises(
        data_utils.UserError, match="application/json is not an accepted ContentType"
    ):
        data_utils.get_content_type("application/json")


# sagemaker_pytorch_serving_container, on the real sagemaker_inference


@pytest.mark.usefixtures("active")
@pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")
def test_pytorch_default_handler(tmp_path: Path) -> None:
    """TorchScript, which the image loads, is deprecated in recent torch: hence the filter."""
    import torch

    handlers = module("sagemaker_pytorch_serving_container.default_pytorch_inference_handler")
    errors = importlib.import_module("sagemaker_inference.errors")
    torch.manual_seed(0)
    network = torch.nn.Linear(3, 2)
    torch.jit.save(torch.jit.script(network), str(tmp_path / "weights.pth"))
    handler = handlers.DefaultPytorchInferenceHandler()
    model = handler.default_model_fn(str(tmp_path))
    data = handler.default_input_fn(json.dumps(FEATURES.tolist()), "application/json")
    assert data.dtype == torch.float32
    prediction = handler.default_predict_fn(data, model)
    with torch.no_grad():
        expected = network(torch.tensor(FEATURES, dtype=torch.float32)).tolist()
    assert json.loads(handler.default_output_fn(prediction, "application/json")) == expected
    csv = handler.default_output_fn(prediction, "text/html, text/csv")
    assert isinstance(csv, bytes) and csv.count(b"\n") == 3
    with pytest.raises(errors.UnsupportedFormatError):
        handler.default_output_fn(prediction, "text/html")
    (tmp_path / "other.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"Exactly one \.pth or \.pt file"):
        handler.default_model_fn(str(tmp_path))
    (tmp_path / "weights.pth").unlink()
    with pytest.raises(handlers.ModelLoadError, match="saved using torchscript"):
        handler.default_model_fn(str(tmp_path))


def test_xgboost_algorithm_mode_reads_recordio_protobuf(booster: Any, tmp_path: Path) -> None:
    from batchtransform.runtimes import create_runtime
    from batchtransform.runtimes.base import RuntimeContext

    (tmp_path / "xgboost-model").write_bytes(pickle.dumps(booster))
    image = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"
    runtime = create_runtime(RuntimeContext(image, tmp_path, {"SAGEMAKER_BATCH": "true"}))
    body = recordio([protobuf_record(np.float32(row).tolist()) for row in FEATURES])
    runtime.start()
    try:
        answer = runtime.invoke(body, "application/x-recordio-protobuf", "text/csv")
    finally:
        runtime.stop()
    expected = booster.predict(xgboost.DMatrix(FEATURES.astype(np.float32))).tolist()
    assert answer == "".join(f"{value}\n" for value in expected).encode()


IMPORTS_CONTAINERS = """
from sagemaker_containers.beta.framework import encoders, worker

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    return worker.Response(encoders.encode([[1, 2]], accept), mimetype=accept)
"""


def test_only_the_matching_runtimes_see_the_stand_ins(tmp_path: Path) -> None:
    from batchtransform.errors import RuntimeStartError
    from batchtransform.runtimes import create_runtime
    from batchtransform.runtimes.base import RuntimeContext

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text(IMPORTS_CONTAINERS)
    sklearn = create_runtime(RuntimeContext("sklearn", tmp_path))
    sklearn.start()
    try:
        assert sklearn.invoke_with_type(b"", "text/csv", "text/csv") == (b"1,2\n", "text/csv")
    finally:
        sklearn.stop()
    assert "sagemaker_containers" not in sys.modules, "forgotten when the runtime stops"
    for image in ("batchtransform/python", "pytorch"):
        with pytest.raises(RuntimeStartError, match="No module named 'sagemaker_containers'"):
            create_runtime(RuntimeContext(image, tmp_path)).start()


XGBOOST_USER_MODULE = """
import os
import pickle

def model_fn(model_dir):
    with open(os.path.join(model_dir, "xgboost-model"), "rb") as f:
        return pickle.load(f)
"""


def test_xgboost_user_mode_default_input_reads_recordio_protobuf(
    booster: Any, tmp_path: Path
) -> None:
    from batchtransform.runtimes import create_runtime
    from batchtransform.runtimes.base import RuntimeContext

    (tmp_path / "xgboost-model").write_bytes(pickle.dumps(booster))
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text(XGBOOST_USER_MODULE)
    runtime = create_runtime(RuntimeContext("xgboost", tmp_path))
    body = recordio([protobuf_record(np.float32(row).tolist()) for row in FEATURES])
    runtime.start()
    try:
        answer = runtime.invoke(body, "application/x-recordio-protobuf", "application/json")
    finally:
        runtime.stop()
    assert (
        json.loads(answer) == booster.predict(xgboost.DMatrix(FEATURES.astype(np.float32))).tolist()
    )
