"""Model runtimes behind one interface (``base.Runtime``), chosen by the container Image.

* ``batchtransform/python`` runs a SageMaker-style ``inference.py`` in-process (``python``);
* SageMaker's scikit-learn, XGBoost and PyTorch inference images (any account, region and
  tag) and the short names ``sklearn``, ``xgboost``, ``pytorch`` run in-process too, with
  that image's default handlers (``frameworks``);
* the Hugging Face PyTorch inference images (``huggingface-pytorch-inference``) and the
  short name ``huggingface`` run in-process with the Hugging Face inference toolkit's
  defaults and batches of JSON records (``huggingface``);
* ``process:///path/to/program``, ``file:///path/to/program`` or a plain absolute path runs
  that model server program on this machine (``process``);
* any other Image runs in a container engine (``docker``), which must be reachable when
  the job starts.

An inference pipeline runs its containers' runtimes in series (``serial.SerialRuntime``).
"""

from __future__ import annotations

import re

from batchtransform.errors import ValidationError
from batchtransform.runtimes.base import ExecutionParameters, Runtime, RuntimeContext

__all__ = [
    "PYTHON_IMAGE",
    "ExecutionParameters",
    "Runtime",
    "RuntimeContext",
    "check_image",
    "create_runtime",
]

PYTHON_IMAGE = "batchtransform/python"

# A container image reference as docker reads it: [registry[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = (
    r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
)
_IMAGE_REFERENCE = re.compile(
    rf"(?:{_REGISTRY}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)


def check_image(image: str) -> None:
    """Raise ValidationError if ``image`` is malformed: neither a program path nor a
    container image reference. Whether it can run is only known when the job starts."""
    from batchtransform.runtimes.process import program_of

    if program_of(image) is not None:
        return
    if not _IMAGE_REFERENCE.fullmatch(image):
        raise ValidationError(
            f"Image {image!r} is neither a container image reference "
            "([registry/]repository[:tag][@digest]) nor a model server program "
            "(process:///path/to/program)."
        )


def create_runtime(context: RuntimeContext) -> Runtime:
    """The runtime for ``context.image`` (see the module docstring for the order)."""
    check_image(context.image)
    from batchtransform.runtimes.docker import DockerRuntime
    from batchtransform.runtimes.frameworks import FrameworkRuntime, framework_for_image
    from batchtransform.runtimes.huggingface import HuggingFaceRuntime, is_huggingface_image
    from batchtransform.runtimes.process import ProcessRuntime, program_of
    from batchtransform.runtimes.python import PythonRuntime

    if context.image.split(":", 1)[0] == PYTHON_IMAGE:
        return PythonRuntime(context)
    if is_huggingface_image(context.image):
        return HuggingFaceRuntime(context)
    framework = framework_for_image(context.image)
    if framework is not None:
        return FrameworkRuntime(context, framework)
    if program_of(context.image) is not None:
        return ProcessRuntime(context)
    return DockerRuntime(context)
