"""SageMaker's framework images, run in-process: scikit-learn, XGBoost and PyTorch.

A model whose Image is one of SageMaker's framework inference images runs with the Python
runtime and that image's own default handlers, so that an existing CreateModel request and
its ``inference.py`` run unchanged. Recognised Images (``framework_for_image``):

* ECR URIs of SageMaker's repositories, in any account, region and with any tag, such as
  ``683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3``:
  ``sagemaker-scikit-learn``; ``sagemaker-xgboost`` and the legacy algorithm's ``xgboost``;
  ``pytorch-inference`` and the older ``sagemaker-pytorch``;
* those repository names without a registry, and the short names ``sklearn``,
  ``scikit-learn``, ``xgboost`` and ``pytorch``, with any tag.

The user module is found as the containers find it: ``SAGEMAKER_PROGRAM`` in
``SAGEMAKER_SUBMIT_DIRECTORY`` when that is set (the SageMaker SDK points it at
``/opt/ml/model/code``, which is the model folder's ``code``, or at a ``sourcedir.tar.gz``
on S3, which is fetched into the instance's ``code`` folder like /opt/ml/code), else in
the model folder's ``code``. A ``requirements.txt`` in that folder is installed before the
handler loads, as the images do, into an environment of the model's own (``requirements``).

Default handlers, after the containers' sources:

* scikit-learn (sagemaker-scikit-learn-container): no default ``model_fn`` (the user must
  give one); ``input_fn`` decodes as sagemaker-containers does (CSV rows through
  ``csv.reader``, then ``np.array(rows).squeeze()``, so a one-row batch is 1-D; JSON;
  NPY) and casts CSV and JSON to float32; ``predict_fn`` is ``model.predict``;
  ``output_fn`` encodes JSON, NPY or CSV (``csv.writer``, a 1-D prediction one per line).
* XGBoost without a user module (algorithm mode): ``model_fn`` loads every file at the top
  of the model folder (``xgboost-model`` as the training job writes it), each pickled or in
  XGBoost's own format, and averages their predictions; ``text/csv`` (delimiter sniffed
  from the first line, empty fields as NaN), ``text/libsvm`` / ``text/x-libsvm`` and
  ``application/x-recordio-protobuf`` (the ``values`` feature of each record) input;
  an empty body answers 204; output ``text/csv``, one prediction a line with a trailing
  newline in batch (``SAGEMAKER_BATCH``), or ``application/json``. The default Accept is
  ``text/csv``. With a user module (``SAGEMAKER_PROGRAM`` or ``code/inference.py``) it has
  no default ``model_fn``, decodes CSV, libsvm and recordio-protobuf to a DMatrix, predicts with
  ``model.predict(data, validate_features=False)`` and encodes as scikit-learn does.
* PyTorch (sagemaker-pytorch-inference-toolkit): ``model_fn`` loads TorchScript
  ``model.pt`` (or the one ``.pt``/``.pth`` file) onto the GPU if there is one; ``input_fn``
  decodes as the inference toolkit does into a float tensor; ``predict_fn`` runs the model
  in eval mode without gradients; ``output_fn`` encodes the tensor as a list.

User code imports the images' own libraries: ``sagemaker_inference`` (from the registry,
with each image's extra) in all three, ``sagemaker_containers`` in scikit-learn and
XGBoost, ``sagemaker_xgboost_container`` in XGBoost and
``sagemaker_pytorch_serving_container`` in PyTorch, the last three as stand-ins from
``runtimes.compat`` that only these runtimes put on ``sys.path`` (``Framework.compat``).
A handler's result may be a Flask-style ``Response`` (see ``responses``); a result that is
not bytes or str is written as the image's server writes it: compact ``json.dumps`` in
scikit-learn and XGBoost, indented by two spaces in PyTorch (TorchServe).

Differences: the XGBoost container falls over on a one-column CSV (its delimiter sniffer
finds no delimiter) where we read it with commas; XGBoost's selectable inference output
(``SAGEMAKER_INFERENCE_OUTPUT``) is not built; NPY bodies are refused when they hold
pickled objects (as everywhere in the Python runtime).

scikit-learn, XGBoost and PyTorch are optional extras; a missing one fails the job with an
error that names the extra to install.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import io
import json
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from batchtransform.errors import ModelError, RuntimeStartError
from batchtransform.model_data import fetch_model
from batchtransform.runtimes import codecs, compat, media, record_protobuf
from batchtransform.runtimes.base import RuntimeContext
from batchtransform.runtimes.python import PythonRuntime
from batchtransform.runtimes.responses import TOOLKIT_JSON_INDENT

__all__ = [
    "FRAMEWORKS",
    "PYTORCH",
    "SKLEARN",
    "XGBOOST",
    "Framework",
    "FrameworkRuntime",
    "framework_for_image",
]

SUBMIT_DIRECTORY_ENV = "SAGEMAKER_SUBMIT_DIRECTORY"
MODEL_DIR_ENV = "SM_MODEL_DIR"
CONTAINER_MODEL_DIR = "/opt/ml/model"
LIBSVM_TYPES = ("text/libsvm", "text/x-libsvm")
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"
_ECR_REGISTRY = re.compile(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_UTF8_TYPES = (media.CSV, media.JSON)

Handlers = dict[str, Callable[..., Any]]


@dataclass(frozen=True)
class Framework:
    """A SageMaker framework image: how Images name it, what it needs, its default handlers.

    ``handlers(user_module, environment)`` gives the default handlers, which may differ
    when there is a user module (XGBoost's algorithm mode has none). ``default_accept`` is
    the container's Accept when the request has none, where it is not the toolkit's JSON.
    ``compat`` names the stand-in libraries (``runtimes.compat``) its user code may import,
    and ``json_indent`` how its server writes a handler's result that is not bytes or str.
    """

    name: str
    extra: str
    modules: tuple[str, ...]
    repositories: frozenset[str]
    short_names: frozenset[str]
    handlers: Callable[[bool, Mapping[str, str]], Handlers]
    default_accept: Callable[[bool], str | None] = lambda user_module: None
    compat: tuple[str, ...] = ()
    json_indent: int | None = None

    def missing(self, module: str) -> str:
        """The message for a framework package that is not installed."""
        return (
            f"the {self.name} image needs the Python package {module!r}, which is not "
            f"installed: pip install 'batchtransform[{self.extra}]'"
        )

    def require(self, module: str) -> ModuleType:
        """Import one of the framework's packages, or say which extra brings it."""
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise ModuleNotFoundError(self.missing(module)) from exc


class FrameworkRuntime(PythonRuntime):
    """The Python runtime with a framework image's user-module lookup and default handlers."""

    def __init__(self, context: RuntimeContext, framework: Framework) -> None:
        super().__init__(context)
        self.framework = framework
        self.json_indent = framework.json_indent
        self._compat_active = False

    def start(self) -> None:
        """Find the user module, choose the defaults, then start as the Python runtime does;
        a framework package the user module lacks is named with the extra that brings it."""
        self.program_dir = self._program_dir()
        user_module = self.program_path().is_file()
        environment = self.context.environment
        self.defaults = self.framework.handlers(user_module, environment)
        self.context = dataclasses.replace(
            self.context, environment=self._environment(user_module, environment)
        )
        compat.activate(self.framework.compat)
        self._compat_active = True
        try:
            super().start()
        except RuntimeStartError as exc:
            missing = _missing_module(exc)
            if missing not in self.framework.modules:
                raise
            raise RuntimeStartError(f"{exc.message}\n{self.framework.missing(missing)}") from exc

    def stop(self) -> None:
        """Stop as the Python runtime does, and take the image's stand-in libraries away."""
        super().stop()
        if self._compat_active:
            self._compat_active = False
            compat.deactivate(self.framework.compat)

    def _environment(self, user_module: bool, environment: Mapping[str, str]) -> dict[str, str]:
        """The job's environment, with the image's default Accept and the model folder in
        ``SM_MODEL_DIR`` (which the containers' libraries read) where it leaves them unset."""
        added = {MODEL_DIR_ENV: str(self.context.model_dir)}
        accept = self.framework.default_accept(user_module)
        if accept:
            added[media.DEFAULT_ACCEPT_ENV] = accept
        result = dict(environment)
        for key, value in added.items():
            if not result.get(key):
                result[key] = value
        return result

    def _program_dir(self) -> Path:
        """Where the user module is: SAGEMAKER_SUBMIT_DIRECTORY, fetched if it is an archive."""
        model_dir = Path(self.context.model_dir)
        submit = self.context.environment.get(SUBMIT_DIRECTORY_ENV)
        if not submit:
            return model_dir / "code"
        if submit == CONTAINER_MODEL_DIR or submit.startswith(CONTAINER_MODEL_DIR + "/"):
            return model_dir / submit[len(CONTAINER_MODEL_DIR) :].lstrip("/")
        try:
            return fetch_model(submit, model_dir.parent / "code")
        except Exception as exc:
            raise RuntimeStartError(
                f"could not fetch the user code {SUBMIT_DIRECTORY_ENV}={submit}: {exc}"
            ) from exc


def framework_for_image(image: str) -> Framework | None:
    """The framework an Image names, or None (any other Image, including other ECR ones)."""
    registry, repository = _registry_and_repository(image)
    if registry is not None and not _ECR_REGISTRY.fullmatch(registry):
        return None
    for framework in FRAMEWORKS:
        names = framework.repositories
        if registry is None:
            names = names | framework.short_names
        if repository in names:
            return framework
    return None


def _registry_and_repository(image: str) -> tuple[str | None, str]:
    """``(registry, repository)`` of a container image reference, without tag or digest."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    if ":" in name[slash + 1 :]:
        name = name[: name.rindex(":")]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, name


def _missing_module(exc: BaseException) -> str | None:
    """The top-level package a ModuleNotFoundError in the cause chain could not find."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, ModuleNotFoundError) and cause.name:
            return cause.name.split(".", 1)[0]
        cause = cause.__cause__
    return None


# sagemaker-containers' codecs, which the scikit-learn and XGBoost user-mode defaults use


def _containers_decode(body: bytes | str, content_type: str | None) -> Any:
    """``encoders.decode``: a missing Content-Type is JSON there; CSV keeps strings."""
    kind = media.media_type(content_type) if content_type else media.JSON
    try:
        if kind == media.CSV:
            rows = list(csv.reader(io.StringIO(_text(body)), strict=True))
            return np.array(rows).squeeze()
        if kind == media.JSON:
            return np.array(json.loads(body))
    except (ValueError, csv.Error) as exc:
        raise _bad_request(f"cannot decode the {kind} request body", exc) from exc
    if kind == media.NPY:
        return codecs.decode(body, kind)
    raise _unsupported(content_type, "text/csv, application/json, application/x-npy")


def _containers_encode(prediction: Any, accept: str) -> tuple[bytes, str]:
    """``encoders.encode`` for the first Accept type we can write: CSV through
    ``csv.writer``; JSON, JSON Lines and NPY as the Python runtime writes them."""
    for candidate in media.parse_accept(accept):
        if media.media_type(candidate) == media.CSV:
            return _array_to_csv(prediction), candidate
        if candidate == media.ANY_TYPE or media.media_type(candidate) in _ENCODED_ELSEWHERE:
            break
    return codecs.encode(prediction, accept)


_ENCODED_ELSEWHERE = frozenset({media.JSON, media.JSON_LINES, media.NPY})


def _array_to_csv(prediction: Any) -> bytes:
    """One row a line, ``\\n`` line ends; a 1-D prediction is one value a line."""
    array = np.asarray(prediction)
    if array.ndim < 2:
        array = array.reshape(-1, 1)
    stream = io.StringIO()
    csv.writer(stream, lineterminator="\n", strict=True).writerows(array)
    return stream.getvalue().encode("utf-8")


# scikit-learn


def _sklearn_handlers(user_module: bool, environment: Mapping[str, str]) -> Handlers:
    return {
        "input_fn": _sklearn_input,
        "predict_fn": _sklearn_predict,
        "output_fn": _containers_encode,
    }


def _sklearn_input(body: bytes | str, content_type: str | None) -> Any:
    array = _containers_decode(body, content_type)
    kind = media.media_type(content_type) if content_type else media.JSON
    if kind not in _UTF8_TYPES:
        return array
    try:
        return array.astype(np.float32)
    except ValueError as exc:
        raise _bad_request("the request holds values that are not numbers", exc) from exc


def _sklearn_predict(data: Any, model: Any) -> Any:
    return model.predict(data)


# XGBoost


@dataclass(frozen=True)
class _Boosters:
    """What XGBoost's algorithm mode loads: every model file, and whether it was pickled."""

    boosters: tuple[Any, ...]
    pickled: tuple[bool, ...]


@dataclass(frozen=True)
class _NoContent:
    """An empty request body, which XGBoost's algorithm mode answers with 204 and no body."""


def _xgboost_handlers(user_module: bool, environment: Mapping[str, str]) -> Handlers:
    if user_module:
        return {
            "input_fn": _xgboost_user_input,
            "predict_fn": _xgboost_user_predict,
            "output_fn": _containers_encode,
        }
    batch = bool(environment.get("SAGEMAKER_BATCH"))
    return {
        "model_fn": _xgboost_load,
        "input_fn": _xgboost_input,
        "predict_fn": _xgboost_predict,
        "output_fn": lambda prediction, accept: _xgboost_output(prediction, accept, batch),
    }


def _xgboost_load(model_dir: str) -> _Boosters:
    """Every file at the top of the model folder, each pickled or in XGBoost's format."""
    xgboost = XGBOOST.require("xgboost")
    files = sorted(path for path in Path(model_dir).iterdir() if path.is_file())
    if not files:
        raise FileNotFoundError(
            f"no model file in {model_dir}: the XGBoost image loads every file at the top "
            "of the model artifact (such as xgboost-model, as training writes it)"
        )
    loaded = [_load_booster(xgboost, path) for path in files]
    return _Boosters(tuple(b for b, _ in loaded), tuple(p for _, p in loaded))


def _load_booster(xgboost: ModuleType, path: Path) -> tuple[Any, bool]:
    try:
        with path.open("rb") as stream:
            return pickle.load(stream), True
    except Exception as pickle_error:
        booster = xgboost.Booster()
        try:
            booster.load_model(str(path))
        except Exception as xgboost_error:
            raise RuntimeError(
                f"Model at {path} cannot be loaded: as a pickle: {pickle_error}; "
                f"as an XGBoost model: {xgboost_error}"
            ) from xgboost_error
        return booster, False


def _xgboost_input(body: bytes | str, content_type: str | None) -> Any:
    """Algorithm mode: (DMatrix, content type), or _NoContent for an empty body."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    if not data:
        return _NoContent()
    kind = media.media_type(content_type) if content_type else media.CSV
    if kind not in (media.CSV, *LIBSVM_TYPES, RECORDIO_PROTOBUF):
        raise _unsupported(
            content_type, f"text/csv, text/libsvm, text/x-libsvm, {RECORDIO_PROTOBUF}"
        )
    try:
        if kind == RECORDIO_PROTOBUF:
            return XGBOOST.require("xgboost").DMatrix(record_protobuf.feature_matrix(data)), kind
        return _dmatrix(data.strip().decode("utf-8"), kind), kind
    except Exception as exc:
        message = f"Loading {kind} data failed, please ensure data is in that format"
        raise ModelError(f"{message}: {exc}", status=415, body=f"{message}: {exc}") from exc


def _xgboost_user_input(body: bytes | str, content_type: str | None) -> Any:
    """User mode (the container's ``encoder.decode``): the body as a DMatrix."""
    kind = media.media_type(content_type) if content_type else ""
    if kind not in (media.CSV, *LIBSVM_TYPES, RECORDIO_PROTOBUF):
        raise _unsupported(
            content_type, f"text/csv, text/libsvm, text/x-libsvm, {RECORDIO_PROTOBUF}"
        )
    try:
        if kind == RECORDIO_PROTOBUF:
            data = body.encode("latin-1") if isinstance(body, str) else body
            return XGBOOST.require("xgboost").DMatrix(record_protobuf.feature_matrix(data))
        return _dmatrix(_text(body), kind)
    except Exception as exc:
        raise _bad_request(f"cannot decode the {kind} request body", exc) from exc


def _dmatrix(text: str, kind: str) -> Any:
    xgboost = XGBOOST.require("xgboost")
    if kind == media.CSV:
        return xgboost.DMatrix(_csv_matrix(text))
    return xgboost.DMatrix(_libsvm_matrix(text))


def _csv_matrix(text: str) -> Any:
    """Rows on ``\\n``, the delimiter sniffed from the first line, empty fields as NaN."""
    try:
        delimiter = csv.Sniffer().sniff(text.split("\n")[0][:512]).delimiter
    except csv.Error:  # one column: nothing to sniff
        delimiter = ","
    if delimiter.isalnum():
        delimiter = ","
    rows = [["nan" if x == "" else x for x in line.split(delimiter)] for line in text.split("\n")]
    return np.array(rows).astype(float)


def _libsvm_matrix(text: str) -> Any:
    """``label index:value ...`` lines as a sparse matrix (labels are ignored)."""
    from scipy.sparse import csr_matrix

    rows, columns, values = [], [], []
    for row, line in enumerate(text.split("\n")):
        for item in line.split(" "):
            if ":" in item:
                column, value = item.split(":", 1)
                rows.append(row)
                columns.append(int(column))
                values.append(float(value))
    return csr_matrix((values, (rows, columns)))


def _xgboost_predict(data: Any, model: _Boosters) -> Any:
    if isinstance(data, _NoContent):
        return data
    matrix, kind = data
    try:
        _check_features(model, matrix, kind)
        predictions = [_predict_all_trees(booster, matrix) for booster in model.boosters]
    except Exception as exc:
        message = f"Unable to evaluate payload provided: {exc}"
        raise ModelError(message, status=400, body=message) from exc
    return predictions[0] if len(predictions) == 1 else np.mean(predictions, axis=0)


def _predict_all_trees(booster: Any, matrix: Any) -> Any:
    """As the container predicts, up to the best iteration when training stopped early."""
    best = getattr(booster, "best_iteration", None)
    if isinstance(best, int):
        return booster.predict(matrix, validate_features=False, iteration_range=(0, best + 1))
    return booster.predict(matrix, validate_features=False)


def _check_features(model: _Boosters, matrix: Any, kind: str) -> None:
    """The container's feature-count check for pickled models (a label column may remain)."""
    names = getattr(model.boosters[0], "feature_names", None)
    if not model.pickled[0] or names is None:
        return
    expected, given = len(names), matrix.num_col()
    if kind in LIBSVM_TYPES and given > expected + 1:
        raise ValueError(
            f"Feature size of libsvm inference data {given} is larger than feature size "
            f"of trained model {expected}."
        )
    if kind == media.CSV and given not in (expected, expected + 1):
        raise ValueError(
            f"Feature size of csv inference data {given} is not consistent with feature "
            f"size of trained model {expected}."
        )


def _xgboost_output(prediction: Any, accept: str, batch: bool) -> tuple[bytes, str]:
    """CSV, one prediction a line in batch (comma-separated otherwise), or JSON."""
    if isinstance(prediction, _NoContent):
        return b"", accept
    for candidate in media.parse_accept(accept):
        if candidate in (media.CSV, "csv"):
            values = [str(value) for value in prediction.tolist()]
            text = "\n".join(values) + "\n" if batch else ",".join(values)
            return text.encode("utf-8"), media.CSV
        if candidate in (media.JSON, "json"):
            return json.dumps(prediction.tolist()).encode("utf-8"), media.JSON
    message = (
        f"Accept {accept!r} is not supported; the XGBoost image writes text/csv or application/json"
    )
    raise ModelError(message, status=406, body=message)


def _xgboost_user_predict(data: Any, model: Any) -> Any:
    return model.predict(data, validate_features=False)


# PyTorch


def _pytorch_handlers(user_module: bool, environment: Mapping[str, str]) -> Handlers:
    return {
        "model_fn": _pytorch_load,
        "input_fn": _pytorch_input,
        "predict_fn": _pytorch_predict,
        "output_fn": _pytorch_output,
    }


def _torch_device(torch: ModuleType) -> Any:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _pytorch_load(model_dir: str) -> Any:
    """TorchScript ``model.pt``, else the one ``.pt`` or ``.pth`` file in the model folder."""
    torch = PYTORCH.require("torch")
    path = Path(model_dir) / "model.pt"
    if not path.exists():
        found = sorted(p for p in Path(model_dir).iterdir() if p.suffix in (".pt", ".pth"))
        if len(found) != 1:
            names = [p.name for p in found]
            raise ValueError(
                f"Exactly one .pth or .pt file is required for PyTorch models: {names}"
            )
        path = found[0]
    device = _torch_device(torch)
    try:
        model = torch.jit.load(str(path), map_location=device)
    except RuntimeError as exc:
        raise RuntimeError(
            f"Failed to load {path}. Please ensure model is saved using torchscript."
        ) from exc
    return model.to(device)


def _pytorch_input(body: bytes | str, content_type: str | None) -> Any:
    torch = PYTORCH.require("torch")
    array = codecs.decode(body, content_type)
    kind = media.media_type(content_type) if content_type else ""
    tensor = torch.FloatTensor(array) if kind in _UTF8_TYPES else torch.from_numpy(array)
    return tensor.to(_torch_device(torch))


def _pytorch_predict(data: Any, model: Any) -> Any:
    torch = PYTORCH.require("torch")
    device = _torch_device(torch)
    with torch.no_grad():
        model = model.to(device)
        model.eval()
        return model(data.to(device))


def _pytorch_output(prediction: Any, accept: str) -> tuple[bytes, str]:
    torch = PYTORCH.require("torch")
    if isinstance(prediction, torch.Tensor):
        prediction = prediction.detach().cpu().numpy().tolist()
    return codecs.encode(prediction, accept)


def _text(body: bytes | str) -> str:
    return body.decode("utf-8") if isinstance(body, bytes) else body


def _bad_request(what: str, exc: Exception) -> ModelError:
    message = f"{what}: {type(exc).__name__}: {exc}"
    return ModelError(message, status=400, body=message)


def _unsupported(content_type: str | None, supported: str) -> ModelError:
    shown = repr(content_type) if content_type else "missing"
    message = f"Content type {shown} is not supported by this image's defaults ({supported})"
    return ModelError(message, status=415, body=message)


SKLEARN = Framework(
    name="scikit-learn",
    extra="sklearn",
    modules=("sklearn", "joblib", "sagemaker_inference"),
    repositories=frozenset({"sagemaker-scikit-learn"}),
    short_names=frozenset({"sklearn", "scikit-learn"}),
    handlers=_sklearn_handlers,
    compat=(compat.CONTAINERS,),
)
XGBOOST = Framework(
    name="XGBoost",
    extra="xgboost",
    modules=("xgboost", "sagemaker_inference"),
    repositories=frozenset({"sagemaker-xgboost", "xgboost"}),
    short_names=frozenset({"xgboost"}),
    handlers=_xgboost_handlers,
    default_accept=lambda user_module: None if user_module else media.CSV,
    compat=(compat.CONTAINERS, compat.XGBOOST),
)
PYTORCH = Framework(
    name="PyTorch",
    extra="pytorch",
    modules=("torch", "sagemaker_inference"),
    repositories=frozenset({"pytorch-inference", "sagemaker-pytorch"}),
    short_names=frozenset({"pytorch"}),
    handlers=_pytorch_handlers,
    compat=(compat.PYTORCH,),
    json_indent=TOOLKIT_JSON_INDENT,
)
FRAMEWORKS = (SKLEARN, XGBOOST, PYTORCH)
