"""The Hugging Face inference toolkit's default handlers: the pipeline, its codecs, predict.

Written after sagemaker-huggingface-inference-toolkit (``handler_service``,
``transformers_utils``, ``decoder_encoder``); the differences are ours and said where they
are. Imported by an instance only; torch and transformers load when ``load_pipeline`` runs.
"""

from __future__ import annotations

import base64
import csv
import datetime
import importlib
import io
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from batchtransform.errors import ModelError, RuntimeStartError
from batchtransform.runtimes import media

__all__ = [
    "BATCH_SIZE_ENV",
    "MODEL_ID_ENV",
    "TASK_ENV",
    "decode",
    "default_handlers",
    "describe",
    "encode",
    "load_pipeline",
    "output_type",
    "predict",
    "predict_many",
    "split_request",
]

TASK_ENV = "HF_TASK"
MODEL_ID_ENV = "HF_MODEL_ID"
REVISION_ENV = "HF_MODEL_REVISION"
TOKEN_ENVS = ("HF_TOKEN", "HF_API_TOKEN")  # the library's name, then the toolkit's
TRUST_REMOTE_CODE_ENV = "HF_TRUST_REMOTE_CODE"
BATCH_SIZE_ENV = "BATCHTRANSFORM_HF_BATCH_SIZE"
DEFAULT_BATCH_SIZE = 32
DEFAULT_ENDPOINT = "https://huggingface.co"

# Architecture name endings and their tasks, most specific first; the toolkit's table,
# where the last match wins and so reads TAPAS as plain question answering.
_ARCHITECTURE_TASKS = (
    ("TapasForQuestionAnswering", "table-question-answering"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForTokenClassification", "token-classification"),
    ("ForSequenceClassification", "text-classification"),
    ("ForMultipleChoice", "multiple-choice"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("MTModel", "text2text-generation"),
    ("EncoderDecoderModel", "text2text-generation"),
    ("GPT2LMHeadModel", "text-generation"),
    ("T5WithLMHeadModel", "text2text-generation"),
)
_CSV_REFUSED_TASKS = frozenset({"zero-shot-classification", "table-question-answering"})
_CSV_HEADERS = ("question", "context", "inputs")
_IMAGE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/tiff",
        "image/bmp",
        "image/gif",
        "image/webp",
        "image/x-image",
    }
)
_AUDIO_TYPES = frozenset({"audio/x-flac", "audio/mpeg", "audio/wave", "audio/ogg", "audio/x-audio"})
_TRUE = frozenset({"y", "yes", "t", "true", "on", "1"})


def default_handlers(environment: Mapping[str, str]) -> dict[str, Callable[..., Any]]:
    """The toolkit's four default handlers, bound to the container's environment."""
    task = environment.get(TASK_ENV)
    return {
        "model_fn": lambda model_dir: load_pipeline(model_dir, environment),
        "input_fn": lambda body, content_type: decode(body, content_type, task),
        "predict_fn": predict,
        "output_fn": encode,
    }


# --- model_fn ----------------------------------------------------------------------------


def load_pipeline(model_dir: str, environment: Mapping[str, str]) -> Any:
    """``transformers.pipeline`` for the task, from the model folder or ``HF_MODEL_ID``.

    Raises RuntimeStartError for a task the library does not know, a task that cannot be
    inferred, and a Hub model that cannot be fetched because the Hub cannot be reached.
    """
    transformers = importlib.import_module("transformers")
    torch = importlib.import_module("torch")
    model_id = environment.get(MODEL_ID_ENV) or None
    task = environment.get(TASK_ENV) or None
    if task is not None:
        check_task(task, f"{TASK_ENV}={task!r}")
    elif model_id is None:
        task = task_from_folder(Path(model_dir))
        check_task(task, f"The task {task!r}, inferred from config.json,")
    options: dict[str, Any] = {
        "device": 0 if torch.cuda.is_available() else -1,
        "trust_remote_code": environment.get(TRUST_REMOTE_CODE_ENV, "").lower() in _TRUE,
    }
    if model_id is not None:
        options.update(_hub_options(environment))
    try:
        return transformers.pipeline(task=task, model=model_id or model_dir, **options)
    except Exception as exc:
        if model_id is not None and _hub_unreachable(exc):
            raise RuntimeStartError(_unreachable_message(model_id, environment, exc)) from exc
        raise


def _hub_options(environment: Mapping[str, str]) -> dict[str, str]:
    options = {}
    if environment.get(REVISION_ENV):
        options["revision"] = environment[REVISION_ENV]
    token = next((environment[name] for name in TOKEN_ENVS if environment.get(name)), None)
    if token:
        options["token"] = token
    return options


def known_tasks() -> list[str]:
    """The pipeline tasks the installed transformers knows, aliases included."""
    from transformers.pipelines import PIPELINE_REGISTRY

    return sorted(PIPELINE_REGISTRY.get_supported_tasks())


def check_task(task: str, named: str) -> None:
    """Raise RuntimeStartError naming ``task`` (as ``named``) and the known ones, unless the
    library knows it."""
    from transformers.pipelines import PIPELINE_REGISTRY

    try:
        PIPELINE_REGISTRY.check_task(task)
    except KeyError:
        import transformers

        raise RuntimeStartError(
            f"{named} is not a task that transformers {transformers.__version__} knows; "
            f"known tasks: {', '.join(known_tasks())}"
        ) from None


def task_from_folder(model_dir: Path) -> str:
    """The task ``config.json``'s first architecture implies, as the toolkit infers it."""
    config = model_dir / "config.json"
    if not config.is_file():
        what = (
            "a diffusers pipeline (model_index.json), which is not supported"
            if (model_dir / "model_index.json").is_file()
            else "no config.json to infer the task from"
        )
        raise RuntimeStartError(
            f"{TASK_ENV} is not set and the model folder holds {what}: set {TASK_ENV} to one "
            f"of: {', '.join(known_tasks())}; or {MODEL_ID_ENV} to a Hugging Face Hub model"
        )
    try:
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures")
    except (ValueError, AttributeError, UnicodeDecodeError) as exc:
        raise RuntimeStartError(f"{config} is not a JSON object: {exc}") from exc
    name = architectures[0] if isinstance(architectures, list) and architectures else None
    for ending, task in _ARCHITECTURE_TASKS:
        if isinstance(name, str) and name.endswith(ending):
            return task
    raise RuntimeStartError(
        f"{TASK_ENV} is not set and the task cannot be inferred from the architecture "
        f"{name!r} in {config}: set {TASK_ENV} to one of: {', '.join(known_tasks())}"
    )


def _hub_unreachable(exc: BaseException) -> bool:
    """Whether loading failed because the Hub could not be reached (or offline mode)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if isinstance(current, ConnectionError) or name in (
            "LocalEntryNotFoundError",
            "OfflineModeIsEnabled",
            "ConnectError",
            "ConnectTimeout",
        ):
            return True
        if isinstance(current, OSError) and "couldn't connect" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _unreachable_message(model_id: str, environment: Mapping[str, str], exc: Exception) -> str:
    endpoint = environment.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    offline = " (HF_HUB_OFFLINE is set)" if environment.get("HF_HUB_OFFLINE") else ""
    said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"{MODEL_ID_ENV}={model_id!r} cannot be loaded: the Hugging Face Hub at {endpoint} "
        f"cannot be reached{offline} and the model is not in the local cache. Let the "
        f"instances reach the Hub, or put the model in the ModelDataUrl instead. "
        f"transformers said: {said}"
    )


def describe(model: Any) -> str:
    """A short line on what runs, for the instance log."""
    task = getattr(model, "task", None)
    device = getattr(model, "device", None)
    return (
        f"{type(model).__name__}"
        + (f" for {task}" if task else "")
        + (f" on {device}" if device is not None else "")
    )


# --- input_fn ----------------------------------------------------------------------------


def decode(body: bytes | str, content_type: str | None, task: str | None = None) -> Any:
    """The toolkit's ``decoder_encoder.decode``; a missing content type is JSON here."""
    kind = media.media_type(content_type) if content_type else media.JSON
    if kind == media.CSV and task in _CSV_REFUSED_TASKS:
        raise _bad_request(f"content type {content_type} not supported with {task}")
    try:
        if kind in (media.JSON, media.JSON_LINES):
            return json.loads(body)
        if kind == media.CSV:
            return _decode_csv(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (ValueError, csv.Error, UnicodeDecodeError) as exc:
        raise _bad_request(f"cannot decode the {kind} request body: {exc}") from exc
    data = body.encode("utf-8") if isinstance(body, str) else body
    if kind == media.NPY:
        from batchtransform.runtimes import codecs

        return codecs.decode(data, kind)
    if kind in _IMAGE_TYPES:
        return {"inputs": _decode_image(data)}
    if kind in _AUDIO_TYPES:
        return {"inputs": bytes(data)}
    raise _bad_request(
        f"Content type {content_type!r} is not supported by the Hugging Face defaults "
        "(application/json, application/jsonlines, text/csv, application/x-npy, images, audio)"
    )


def _decode_csv(text: str) -> dict[str, Any]:
    """Rows under a header with ``inputs`` (a list of texts) or question/context columns."""
    lines = text.splitlines()
    if not lines or not any(name in lines[0].lower() for name in _CSV_HEADERS):
        raise _bad_request(
            "You need to provide the correct CSV with Header columns to use it with the "
            "inference toolkit default handler."
        )
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and "inputs" in rows[0]:
        return {"inputs": [row["inputs"] for row in rows]}
    return {"inputs": rows}


def _decode_image(data: bytes) -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise _bad_request("image requests need Pillow: pip install pillow") from exc
    return Image.open(io.BytesIO(data)).convert("RGB")


# --- predict_fn --------------------------------------------------------------------------


def split_request(data: Any) -> tuple[Any, Any]:
    """``(inputs, parameters)`` of a decoded request, as the toolkit's predict pops them: an
    object's ``inputs`` (else the object without ``parameters``); any other value is its own
    inputs (where the toolkit fails)."""
    if not isinstance(data, dict):
        return data, None
    rest = dict(data)
    inputs = rest.pop("inputs", rest)
    parameters = rest.pop("parameters", None)
    return inputs, parameters


def predict(data: Any, model: Any) -> Any:
    """The toolkit's predict: ``model(inputs, **parameters)``."""
    inputs, parameters = split_request(data)
    return _call(model, inputs, parameters)


def _call(model: Any, inputs: Any, parameters: Any) -> Any:
    if parameters is None:
        return model(inputs)
    if not isinstance(parameters, dict):
        raise _bad_request(f"parameters must be a JSON object, not {type(parameters).__name__}")
    return model(inputs, **parameters)


def predict_many(model: Any, inputs: list[Any], parameters: Any, batch_size: int) -> list[Any]:
    """Each input's prediction, as ``predict`` would give it alone, from one pipeline call
    where the pipeline's list form is known (``_single_form``), else one call each."""
    single_form = _single_form(model, parameters)
    if single_form is None:
        return [_call(model, each, parameters) for each in inputs]
    options = dict(parameters or {})
    options.setdefault("batch_size", _batch_size(model, len(inputs), batch_size))
    results = _call(model, list(inputs), options)
    if not isinstance(results, list) or len(results) != len(inputs):
        raise ModelError(
            f"the pipeline answered {len(inputs)} inputs with "
            f"{len(results) if isinstance(results, list) else type(results).__name__} results",
            status=400,
        )
    return [single_form(result) for result in results]


def _single_form(model: Any, parameters: Any) -> Callable[[Any], Any] | None:
    """How one element of a pipeline's answer to a list becomes its answer to that input
    alone, for the pipelines whose list answer has one element per text; None for others
    (generation pads on the wrong side for a batch; question answering and chat inputs
    take other shapes)."""
    pipelines = sys.modules.get("transformers.pipelines")
    if pipelines is None:
        return None
    text_classification = getattr(pipelines, "TextClassificationPipeline", None)
    if text_classification is not None and isinstance(model, text_classification):
        legacy = not isinstance(parameters, dict) or "top_k" not in parameters
        return (lambda result: [result]) if legacy else _same  # as its __call__ wraps one text
    same = (
        "TokenClassificationPipeline",
        "FillMaskPipeline",
        "FeatureExtractionPipeline",
        "ZeroShotClassificationPipeline",
    )
    classes = tuple(c for c in (getattr(pipelines, name, None) for name in same) if c)
    return _same if classes and isinstance(model, classes) else None


def _same(result: Any) -> Any:
    return result


def _batch_size(model: Any, count: int, limit: int) -> int:
    """Texts per forward pass: all of them up to ``limit``; one where the tokenizer has no
    padding token, which a batch needs."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None and getattr(tokenizer, "pad_token_id", None) is None:
        return 1
    return max(1, min(count, limit))


# --- output_fn ---------------------------------------------------------------------------


class _ToolkitJSONEncoder(json.JSONEncoder):
    """numpy numbers, arrays and tensors, datetimes and images as the toolkit writes them."""

    def default(self, o: Any) -> Any:
        if hasattr(o, "item") and getattr(o, "shape", None) == ():
            return o.item()
        if hasattr(o, "tolist"):
            return o.tolist()
        if isinstance(o, datetime.datetime):
            return str(o)
        if hasattr(o, "save") and hasattr(o, "mode"):  # a PIL image
            with io.BytesIO() as out:
                o.save(out, format="PNG")
                return base64.b64encode(out.getvalue()).decode("utf-8")
        return super().default(o)


def output_type(accept: str) -> str:
    """The media type ``encode`` writes for ``accept``: the first one it supports."""
    for candidate in media.parse_accept(accept):
        kind = media.media_type(candidate)
        if candidate == media.ANY_TYPE:
            return media.JSON
        if kind in (media.JSON, media.JSON_LINES, media.CSV, media.NPY):
            return kind
    raise _bad_request(
        f"Accept {accept!r} is not supported by the Hugging Face defaults "
        "(application/json, application/jsonlines, text/csv, application/x-npy)"
    )


def encode(prediction: Any, accept: str) -> tuple[bytes, str]:
    """The toolkit's ``decoder_encoder.encode``: compact JSON, CSV rows of the result's
    objects under a header, or NPY. JSON Lines is written as JSON (one line)."""
    kind = output_type(accept)
    if kind == media.CSV:
        return _encode_csv(prediction), kind
    if kind == media.NPY:
        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, prediction)
        return buffer.getvalue(), kind
    text = json.dumps(
        prediction,
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
        cls=_ToolkitJSONEncoder,
    )
    return text.encode("utf-8"), kind


def _encode_csv(prediction: Any) -> bytes:
    rows = prediction if isinstance(prediction, list) else [prediction]
    if not rows or not all(isinstance(row, dict) for row in rows):
        raise _bad_request("text/csv output needs a result made of JSON objects")
    stream = io.StringIO()
    writer = csv.DictWriter(stream, list(rows[0].keys()))
    writer.writeheader()
    writer.writerows(rows)
    return stream.getvalue().encode("utf-8")


def _bad_request(message: str) -> ModelError:
    return ModelError(message, status=400, body=message)
