"""batchtransform: self-hosted batch inference with the Amazon SageMaker Batch Transform API.

    from batchtransform import Session, Transformer

The SDK and the service load on first use, so that the processes that only run jobs
(controllers and instances) do not pay for them at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from batchtransform.errors import (
    BatchTransformError,
    ConflictError,
    DataError,
    ModelError,
    NotBuiltError,
    NotFoundError,
    RuntimeStartError,
    StorageError,
    UnexpectedStatusException,
    ValidationError,
)

if TYPE_CHECKING:
    from batchtransform.sdk import Session, Transformer
    from batchtransform.service import Service

__version__ = "0.1.0"

__all__ = [
    "BatchTransformError",
    "ConflictError",
    "DataError",
    "ModelError",
    "NotBuiltError",
    "NotFoundError",
    "RuntimeStartError",
    "Service",
    "Session",
    "StorageError",
    "Transformer",
    "UnexpectedStatusException",
    "ValidationError",
    "__version__",
]

_LAZY = {"Session": "batchtransform.sdk", "Transformer": "batchtransform.sdk"}
_LAZY["Service"] = "batchtransform.service"


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'batchtransform' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
