"""Hugging Face models in-process: the ``huggingface-pytorch-inference`` images' behaviour.

A model whose Image is one of the Hugging Face inference images runs with the Python
runtime and the defaults of the Hugging Face inference toolkit
(sagemaker-huggingface-inference-toolkit), so that a CreateModel request made for SageMaker
and its ``code/inference.py`` run unchanged. Recognised Images (``is_huggingface_image``):
ECR URIs of ``huggingface-pytorch-inference`` in any account, region and with any tag
(such as ``763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:
2.1.0-transformers4.37.0-cpu-py310-ubuntu22.04``), that repository name alone, and the short
name ``huggingface``, with any tag.

Defaults, as the toolkit's handler service has them (``hf_handlers`` holds the codecs):

* ``model_fn`` builds ``transformers.pipeline`` for ``HF_TASK``; without it, for the task
  the model folder's ``config.json`` implies by its first architecture's name (as the
  toolkit infers it). ``HF_MODEL_ID`` loads that Hub model instead of the model folder,
  with ``HF_MODEL_REVISION``, ``HF_TOKEN`` (or the toolkit's ``HF_API_TOKEN``) and
  ``HF_TRUST_REMOTE_CODE``, into the library's own cache (``HF_HOME``); the library then
  reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` as usual. The pipeline runs on the first
  CUDA device when torch sees one, else on the CPU.
* ``input_fn`` decodes JSON, CSV with a header naming ``inputs`` (or ``question`` and
  ``context``), NPY, images (with Pillow) and audio; ``predict_fn`` calls the pipeline with
  the request's ``inputs`` and its ``parameters`` as keyword arguments; ``output_fn``
  writes compact JSON (CSV and NPY on request).
* Every handler error answers 400, as the toolkit's ``handle`` does, so it is not retried.
* Requests reach the model one at a time (``HuggingFaceRuntime.invoke_with_type``).

Beyond the toolkit: ``application/jsonlines`` is read and written like JSON; a record that
is not a JSON object is its own ``inputs``; and a request that holds several JSON records,
one a line (a MultiRecord batch of SplitType Line, with ContentType ``application/json`` or
``application/jsonlines``), is a batch (``hf_batch``): its records go to the pipeline in one
call per set of equal ``parameters``, and the response has one line per record, each the
same JSON that record alone would have been answered with. A request that is one JSON
document, whatever its line breaks, is one request, exactly as in the toolkit. A user
``input_fn`` or ``transform_fn`` takes the whole body as it comes, as in the toolkit.

torch and transformers come with the ``huggingface`` extra; a job without them fails at
start, naming it. Not built: the toolkit's diffusers (``text-to-image``) and AWS Neuron
pipelines.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from batchtransform.errors import ModelError, RuntimeStartError
from batchtransform.runtimes import hf_batch, hf_handlers, media
from batchtransform.runtimes.base import RuntimeContext
from batchtransform.runtimes.frameworks import (
    _ECR_REGISTRY,
    Framework,
    FrameworkRuntime,
    Handlers,
    _registry_and_repository,
)

__all__ = ["HUGGINGFACE", "HuggingFaceRuntime", "is_huggingface_image"]

_REPOSITORIES = frozenset({"huggingface-pytorch-inference"})
_SHORT_NAMES = frozenset({"huggingface"})


def _handlers(user_module: bool, environment: Mapping[str, str]) -> Handlers:
    return hf_handlers.default_handlers(environment)


HUGGINGFACE = Framework(
    name="Hugging Face",
    extra="huggingface",
    modules=("torch", "transformers", "huggingface_hub", "tokenizers", "safetensors"),
    repositories=_REPOSITORIES,
    short_names=_SHORT_NAMES,
    handlers=_handlers,
)


def is_huggingface_image(image: str) -> bool:
    """Whether ``image`` names a Hugging Face PyTorch inference image (module docstring)."""
    registry, repository = _registry_and_repository(image)
    if registry is None:
        return repository in _REPOSITORIES | _SHORT_NAMES
    return bool(_ECR_REGISTRY.fullmatch(registry)) and repository in _REPOSITORIES


class HuggingFaceRuntime(FrameworkRuntime):
    """The framework runtime with the Hugging Face toolkit's defaults and batches of records."""

    def __init__(self, context: RuntimeContext) -> None:
        super().__init__(context, HUGGINGFACE)
        self._one_call_at_a_time = threading.Lock()

    def start(self) -> None:
        """Start as the framework runtime does, and say in the instance log what runs."""
        super().start()
        self._log(f"Hugging Face model ready: {hf_handlers.describe(self._model())}")

    def _run_start_handler(self, handler: Any, context: Any, *args: Any) -> Any:
        """The default ``model_fn``'s own start errors (an unknown task, an unreachable Hub)
        are raised as they are, without the traceback a user's ``model_fn`` error gets;
        anything else it raises (a missing package, say) is wrapped as usual."""
        try:
            return super()._run_start_handler(handler, context, *args)
        except RuntimeStartError as exc:
            ours = handler.function is self.defaults.get("model_fn")
            if ours and isinstance(exc.__cause__, RuntimeStartError):
                raise exc.__cause__ from exc.__cause__.__cause__
            raise

    def invoke_with_type(
        self, payload: bytes, content_type: str | None, accept: str | None
    ) -> tuple[bytes, str | None]:
        """One request as the toolkit serves it, or a batch of JSON records (module doc).

        Requests run one at a time: a fast tokenizer used from two threads at once fails
        with "Already borrowed" (huggingface/tokenizers#537), and one pipeline call
        already keeps the cores busy; MaxConcurrentTransforms still overlaps reading and
        writing with the model's work."""
        try:
            with self._one_call_at_a_time:
                records = self._batch_records(payload, content_type)
                if records is None:
                    return super().invoke_with_type(payload, content_type, accept)
                return self._invoke_batch(records, accept)
        except ModelError as exc:
            raise _as_toolkit_error(exc) from exc

    def _batch_records(self, payload: bytes, content_type: str | None) -> list[Any] | None:
        """The records of a batch, or None for a request the toolkit's way serves."""
        served = self._served
        if served is None or self._user_defines("transform_fn", "input_fn"):
            return None
        if not content_type or media.media_type(content_type) not in hf_batch.BATCH_TYPES:
            return None
        return hf_batch.records_of(payload)

    def _invoke_batch(self, records: list[Any], accept: str | None) -> tuple[bytes, str | None]:
        served = self._served
        if served is None:
            raise ModelError("the Python runtime is not started, or already stopped", status=503)
        predict_fn, output_fn = served.handlers.predict_fn, served.handlers.output_fn
        assert predict_fn is not None and output_fn is not None  # defaults fill both
        accept = media.resolve_accept(accept, served.context.environment)
        batch = hf_batch.Batch(
            predict=lambda data: predict_fn(served.context, data, served.model),
            encode=lambda prediction: output_fn(served.context, prediction, accept),
            default_predict=not self._user_defines("predict_fn"),
            default_output=not self._user_defines("output_fn"),
            model=served.model,
            environment=served.context.environment,
        )
        try:
            return batch.run(records, accept)
        except ModelError as exc:
            self._log(f"request failed: {exc.message}")
            raise
        except Exception as exc:
            raise self._request_error(exc) from exc

    def _user_defines(self, *names: str) -> bool:
        """Whether the user's module brings any of the handlers ``names``."""
        served = self._served
        if served is None:
            return False
        for name in names:
            handler = getattr(served.handlers, name)
            if handler is not None and handler.function is not self.defaults.get(name):
                return True
        return False

    def _model(self) -> Any:
        return None if self._served is None else self._served.model


def _as_toolkit_error(exc: ModelError) -> ModelError:
    """A handler's failure as the toolkit answers it: status 400 (its ``handle`` wraps every
    exception so); the runtime's own 503 (not started) stays."""
    if exc.model_status is None or exc.model_status == 503 or exc.model_status < 500:
        return exc
    return ModelError(exc.message, status=400, body=exc.body)
