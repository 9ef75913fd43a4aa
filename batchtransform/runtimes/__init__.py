"""Model runtimes behind one interface (``base.Runtime``), chosen by the container Image.

Today: ``batchtransform/python`` runs a SageMaker-style ``inference.py`` in-process. Images
served by a local program or a container engine come with their runtimes later; until
then such an image is refused with an error that says so.
"""

from __future__ import annotations

from batchtransform.errors import NotBuiltError
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


def check_image(image: str) -> None:
    """Raise NotBuiltError if no runtime can run ``image`` yet."""
    if image.split(":", 1)[0] != PYTHON_IMAGE:
        raise NotBuiltError(
            f"Image {image!r}: only the in-process Python runtime ({PYTHON_IMAGE!r}) is built "
            "yet; runtimes for model-server programs and container images are not built yet."
        )


def create_runtime(context: RuntimeContext) -> Runtime:
    """The runtime for ``context.image``."""
    check_image(context.image)
    from batchtransform.runtimes.python import PythonRuntime

    return PythonRuntime(context)
