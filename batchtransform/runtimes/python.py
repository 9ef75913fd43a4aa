"""The in-process Python runtime, Image ``batchtransform/python``.

It runs a SageMaker-style ``inference.py`` the way sagemaker-inference-toolkit's Transformer
does, without a model server in between, so an ``inference.py`` written for a SageMaker
framework container runs unchanged:

* The user module is ``<model_dir>/code/inference.py``, or ``SAGEMAKER_PROGRAM``: a file
  name in ``code/`` (``.py`` may be left off, as the toolkit allows) or an absolute path.
  Its folder goes on ``sys.path`` so that its helper modules import.
* A ``requirements.txt`` in the code folder is installed first, as the framework images
  do, into an environment of the model's own that goes on ``sys.path`` after the code
  folder (see ``requirements`` for the cache and which versions win).
* Handlers: ``model_fn(model_dir)`` (required), optional ``pre_model_fn(model_dir)`` and
  ``model_warmup_fn(model_dir, model)``; then either ``transform_fn(model, input_data,
  content_type, accept)`` or any of ``input_fn(input_data, content_type)``,
  ``predict_fn(data, model)`` and ``output_fn(prediction, accept)``, with defaults for the
  missing ones. Each may take one more, trailing ``context`` argument (a HandlerContext).
* As in the toolkit, the body reaches a user's ``input_fn`` or ``transform_fn`` as ``str``
  (decoded from UTF-8) for ``text/csv`` and ``application/json`` and as ``bytes`` for every
  other type; a missing Accept or ``*/*`` becomes ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``
  (default ``application/json``) before any handler sees it.
* A handler's exception fails the request with status 500, or the exception's own
  ``status_code`` (as the toolkit's BaseInferenceToolkitError sets it), and a body of
  ``"<message>\\n<traceback>"``.

Unlike the toolkit, content types match without their parameters (see ``codecs``), and
``transform_fn`` and ``output_fn`` may return any of bytes, str, ``(body, content_type)``, a
werkzeug-style Response or a JSON-able value (which the model server would have written as
JSON, indented by ``json_indent``): see ``responses``.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from batchtransform.errors import ModelError, RuntimeStartError
from batchtransform.runtimes import codecs, media, requirements, responses
from batchtransform.runtimes.base import Runtime, RuntimeContext

__all__ = ["DEFAULT_PROGRAM", "PROGRAM_ENV", "HandlerContext", "PythonRuntime"]

PROGRAM_ENV = "SAGEMAKER_PROGRAM"
DEFAULT_PROGRAM = "inference.py"

# The handlers the toolkit looks up, with the arguments each takes before the context.
_SIGNATURES = {
    "pre_model_fn": ("model_dir",),
    "model_fn": ("model_dir",),
    "model_warmup_fn": ("model_dir", "model"),
    "transform_fn": ("model", "input_data", "content_type", "accept"),
    "input_fn": ("input_data", "content_type"),
    "predict_fn": ("data", "model"),
    "output_fn": ("prediction", "accept"),
}
_CHAIN = ("input_fn", "predict_fn", "output_fn")
_TEXT_TYPES = frozenset({media.CSV, media.JSON})
_START_TRACEBACK_FRAMES = 5


@dataclass(frozen=True)
class HandlerContext:
    """What a handler with a trailing ``context`` argument receives, the same for every call.

    The toolkit passes the model server's Context there; what inference code reads from it
    is ``system_properties["model_dir"]``, which this keeps. There is no GPU id, batch size
    or request processor. ``environment`` is the job's container environment.
    """

    model_dir: str
    environment: Mapping[str, str]
    system_properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Handler:
    """One user handler and whether it takes the trailing context, decided once at start."""

    name: str
    function: Callable[..., Any]
    takes_context: bool

    def __call__(self, context: HandlerContext, *args: Any) -> Any:
        if self.takes_context:
            return self.function(*args, context)
        return self.function(*args)


@dataclass(frozen=True)
class _Handlers:
    """The user's handlers; None where the module defines none (model_fn it must define)."""

    model_fn: _Handler
    pre_model_fn: _Handler | None = None
    model_warmup_fn: _Handler | None = None
    transform_fn: _Handler | None = None
    input_fn: _Handler | None = None
    predict_fn: _Handler | None = None
    output_fn: _Handler | None = None


@dataclass(frozen=True)
class _Served:
    """Everything a request needs, replaced as a whole so that a call never sees a
    half-started or half-stopped runtime and calls share nothing mutable."""

    model: Any
    handlers: _Handlers
    context: HandlerContext

    def transform(self, payload: bytes, content_type: str | None, accept: str) -> Any:
        """The toolkit's transform: the user's transform_fn, or input, predict, output."""
        transform_fn = self.handlers.transform_fn
        if transform_fn is not None:
            body = _user_body(payload, content_type)
            return transform_fn(self.context, self.model, body, content_type, accept)
        data = self._input(payload, content_type)
        prediction = self._predict(data)
        return self._output(prediction, accept)

    def _input(self, payload: bytes, content_type: str | None) -> Any:
        input_fn = self.handlers.input_fn
        if input_fn is None:
            return codecs.decode(payload, content_type)
        return input_fn(self.context, _user_body(payload, content_type), content_type)

    def _predict(self, data: Any) -> Any:
        predict_fn = self.handlers.predict_fn
        if predict_fn is None:
            return _default_predict(data, self.model)
        return predict_fn(self.context, data, self.model)

    def _output(self, prediction: Any, accept: str) -> Any:
        output_fn = self.handlers.output_fn
        if output_fn is None:
            return codecs.encode(prediction, accept)
        return output_fn(self.context, prediction, accept)


class PythonRuntime(Runtime):
    """Runs ``inference.py`` in this process (one process per instance).

    ``start`` applies the job's environment to ``os.environ`` (user code reads it there),
    imports the user module and loads the model; ``stop`` undoes all
    three. ``invoke`` is safe from many threads as long as the user's handlers are.

    Framework images adjust two things before ``start``: ``defaults``, handlers their model
    server supplies where the user module defines none (by handler name, called without a
    context), and ``program_dir``, where a relative ``SAGEMAKER_PROGRAM`` is found.
    """

    def __init__(
        self, context: RuntimeContext, defaults: Mapping[str, Callable[..., Any]] | None = None
    ) -> None:
        super().__init__(context)
        self.defaults: Mapping[str, Callable[..., Any]] = defaults or {}
        self.program_dir = Path(context.model_dir) / "code"
        self.json_indent: int | None = responses.TOOLKIT_JSON_INDENT
        self._served: _Served | None = None
        self._module_name: str | None = None
        self._code_dir: str | None = None
        self._added_sys_path = False
        self._requirements_paths: list[str] = []
        self._saved_environment: dict[str, str | None] = {}
        self._log_lock = threading.Lock()

    def start(self) -> None:
        """Import the user module and load the model; raises RuntimeStartError."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def invoke(self, payload: bytes, content_type: str | None, accept: str | None) -> bytes:
        """Run the handler chain on one mini-batch; raises ModelError when it fails."""
        return self.invoke_with_type(payload, content_type, accept)[0]

    def invoke_with_type(
        self, payload: bytes, content_type: str | None, accept: str | None
    ) -> tuple[bytes, str | None]:
        """``invoke``, and the content type the handlers answered with, when they said one
        (the default output_fn always does; a handler does by returning ``(body, type)``)."""
        served = self._served
        if served is None:
            raise ModelError("the Python runtime is not started, or already stopped", status=503)
        accept = media.resolve_accept(accept, served.context.environment)
        try:
            result = served.transform(payload, content_type, accept)
            return responses.response_body(result, self.json_indent)
        except ModelError as exc:
            self._log(f"request failed: {exc.message}")
            raise
        except Exception as exc:
            raise self._request_error(exc) from exc

    def stop(self) -> None:
        """Drop the model, forget the user's modules and path, restore the environment."""
        self._served = None
        if self._module_name is not None:
            sys.modules.pop(self._module_name, None)
            self._module_name = None
        if self._code_dir is not None:
            _forget_modules_under(self._code_dir)
            if self._added_sys_path and self._code_dir in sys.path:
                sys.path.remove(self._code_dir)
            self._code_dir = None
            self._added_sys_path = False
        requirements.deactivate(self._requirements_paths)
        self._requirements_paths = []
        self._restore_environment()

    def _start(self) -> None:
        self._apply_environment()
        self._install_requirements()
        program = self.program_path()
        module = self._import(program) if program.is_file() else None
        handlers = _find_handlers(module, program, self.defaults)
        context = HandlerContext(
            model_dir=str(self.context.model_dir),
            environment=MappingProxyType(dict(self.context.environment)),
            system_properties=MappingProxyType({"model_dir": str(self.context.model_dir)}),
        )
        model = self._load_model(handlers, context)
        self._served = _Served(model=model, handlers=handlers, context=context)

    def program_path(self) -> Path:
        """The user module's file, which need not exist: ``SAGEMAKER_PROGRAM`` or the default."""
        program = self.context.environment.get(PROGRAM_ENV) or DEFAULT_PROGRAM
        path = Path(program)
        if not path.is_absolute():
            path = self.program_dir / path
        if path.suffix != ".py" and not path.is_file():
            path = path.with_name(path.name + ".py")
        return path

    def _install_requirements(self) -> None:
        """The code folder's requirements.txt, installed or reused, put on ``sys.path``."""
        file = self.program_dir / requirements.REQUIREMENTS_FILE
        if not file.is_file():
            return
        notice = self._log if self.context.notice is None else self.context.notice
        environment = requirements.prepare(file, self.context.log, notice)
        self._requirements_paths = requirements.activate(environment)

    def _import(self, program: Path) -> ModuleType:
        """Import ``program`` under its own name (``inference``), as the toolkit does, so that
        objects pickled with classes from that module load; a unique name only if taken."""
        self._code_dir = str(program.parent)
        if self._code_dir not in sys.path:
            sys.path.insert(0, self._code_dir)
            self._added_sys_path = True
        name = program.stem
        if name in sys.modules:
            name = f"_batchtransform_user_{program.stem}_{uuid.uuid4().hex[:12]}"
        spec = importlib.util.spec_from_file_location(name, program)
        if spec is None or spec.loader is None:
            raise RuntimeStartError(f"cannot import {program} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        self._module_name = name
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise self._start_error(f"importing {program} failed", exc) from exc
        return module

    def _load_model(self, handlers: _Handlers, context: HandlerContext) -> Any:
        """pre_model_fn, model_fn, model_warmup_fn, in the toolkit's order."""
        model_dir = context.model_dir
        if handlers.pre_model_fn is not None:
            self._run_start_handler(handlers.pre_model_fn, context, model_dir)
        model = self._run_start_handler(handlers.model_fn, context, model_dir)
        if handlers.model_warmup_fn is not None:
            self._run_start_handler(handlers.model_warmup_fn, context, model_dir, model)
        return model

    def _run_start_handler(self, handler: _Handler, context: HandlerContext, *args: Any) -> Any:
        try:
            return handler(context, *args)
        except Exception as exc:
            raise self._start_error(f"{handler.name} failed", exc) from exc

    def _start_error(self, what: str, exc: BaseException) -> RuntimeStartError:
        """A start error that a user can act on: what failed, why, and where in their code."""
        self._log(f"{what}:\n{_format_traceback(exc)}")
        frames = _format_traceback(exc, limit=-_START_TRACEBACK_FRAMES)
        return RuntimeStartError(f"{what}: {type(exc).__name__}: {exc}\n{frames}")

    def _request_error(self, exc: Exception) -> ModelError:
        """A failed request as the toolkit answers it: message, then the traceback."""
        message = _exception_message(exc)
        trace = _format_traceback(exc)
        self._log(trace)
        return ModelError(
            f"{type(exc).__name__}: {message}", status=_status_of(exc), body=f"{message}\n{trace}"
        )

    def _apply_environment(self) -> None:
        for key, value in self.context.environment.items():
            self._saved_environment.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _restore_environment(self) -> None:
        for key, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environment = {}

    def _log(self, text: str) -> None:
        """Write to the instance log; a log that fails must not hide the model's error."""
        log = self.context.log
        if log is None:
            return
        with self._log_lock:
            try:
                log.write(text if text.endswith("\n") else text + "\n")
                log.flush()
            except (OSError, ValueError):
                pass


def _find_handlers(
    module: ModuleType | None, program: Path, defaults: Mapping[str, Callable[..., Any]]
) -> _Handlers:
    """The module's handlers, checked as the toolkit checks them, then ``defaults`` where the
    module defines none (the chain's only without a transform_fn), then a model_fn check."""
    found: dict[str, _Handler] = {}
    for name in _SIGNATURES:
        function = getattr(module, name, None) if module is not None else None
        if function is not None:
            found[name] = _handler(name, function, program)
    chain = [name for name in _CHAIN if name in found]
    if "transform_fn" in found and chain:
        raise RuntimeStartError(
            f"{program} defines transform_fn together with {', '.join(chain)}: transform_fn "
            "replaces input_fn, predict_fn and output_fn, so define either transform_fn alone "
            "or any of the other three (the SageMaker inference toolkit refuses this too)"
        )
    for name, function in defaults.items():
        if name not in found and not (name in _CHAIN and "transform_fn" in found):
            found[name] = _Handler(name, function, takes_context=False)
    if "model_fn" not in found:
        raise RuntimeStartError(_missing_model_fn(program, module is not None))
    return _Handlers(**found)


def _handler(name: str, function: Any, program: Path) -> _Handler:
    """Whether ``function`` takes the trailing context, by the toolkit's rule: one parameter
    more than the handler's arguments means yes. Other signatures must accept the arguments."""
    if not callable(function):
        raise RuntimeStartError(f"{name} in {program} is a {type(function).__name__}, not callable")
    arguments = _SIGNATURES[name]
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins have no signature; call them plainly
        return _Handler(name, function, takes_context=False)
    count = len(signature.parameters)
    if count in (len(arguments), len(arguments) + 1):
        return _Handler(name, function, takes_context=count > len(arguments))
    try:
        signature.bind(*arguments)
    except TypeError:
        raise RuntimeStartError(
            f"{name}{signature} in {program} must take {len(arguments)} arguments "
            f"({', '.join(arguments)}), or {len(arguments) + 1} with a trailing context"
        ) from None
    return _Handler(name, function, takes_context=False)


def _missing_model_fn(program: Path, module_exists: bool) -> str:
    where = f"{program} defines none" if module_exists else f"{program} does not exist"
    return (
        "the Python runtime needs a model_fn(model_dir) that loads the model: put "
        f"code/inference.py with a model_fn in the model artifact, or name another file in "
        f"{PROGRAM_ENV} ({where})"
    )


def _user_body(payload: bytes, content_type: str | None) -> bytes | str:
    """The body as the toolkit hands it to user handlers: text for CSV and JSON."""
    if not content_type or media.media_type(content_type) not in _TEXT_TYPES:
        return payload
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"the {content_type} request body is not UTF-8: {exc}"
        raise ModelError(message, status=400, body=message) from exc


def _default_predict(data: Any, model: Any) -> Any:
    """``model.predict(data)``, else ``model(data)``: covers scikit-learn, XGBoost and
    plain callables, where the toolkit has no default at all."""
    predict = getattr(model, "predict", None)
    if callable(predict):
        return predict(_as_rows(data, model))
    if callable(model):
        return model(data)
    message = (
        f"the model from model_fn (a {type(model).__name__}) has no predict method and is not "
        "callable; define predict_fn(data, model) in inference.py"
    )
    raise ModelError(message, status=500, body=message)


def _as_rows(data: Any, model: Any) -> Any:
    """One CSV row decodes to a 1-D array (as genfromtxt gives it), which scikit-learn-style
    models refuse; with the model's feature count known, a 1-D array is read as its rows."""
    features = getattr(model, "n_features_in_", None)
    one_dimensional = getattr(data, "ndim", None) == 1
    if one_dimensional and isinstance(features, int) and features > 0 and data.size % features == 0:
        return data.reshape(-1, features)
    return data


def _exception_message(exc: BaseException) -> str:
    """The toolkit's errors keep their text in ``message``; others in ``str()``."""
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) else str(exc)


def _status_of(exc: BaseException) -> int:
    """The exception's own HTTP status (``status_code``, as the toolkit's errors carry), or 500."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status <= 599:
        return status
    return 500


def _format_traceback(exc: BaseException, limit: int | None = None) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=limit))


def _forget_modules_under(folder: str) -> None:
    """Drop the user's helper modules from ``sys.modules``, so that another model with a
    helper of the same name in this process imports its own."""
    prefix = os.path.join(folder, "")
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.startswith(prefix):
            sys.modules.pop(name, None)
