"""batchtransform: self-hosted batch inference with the Amazon SageMaker Batch Transform API.

    from batchtransform import Session, Transformer

Names are imported on first use, so that the processes that only run jobs (controllers and
instances) do not pay for the SDK and the service at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from batchtransform.sdk import Session, Transformer
    from batchtransform.service import Service

__version__ = "0.1.0"

_HOMES = {
    "Session": "batchtransform.sdk",
    "Transformer": "batchtransform.sdk",
    "Service": "batchtransform.service",
    **dict.fromkeys(
        [
            "BatchTransformError",
            "ConflictError",
            "DataError",
            "ModelError",
            "NotBuiltError",
            "NotFoundError",
            "RuntimeStartError",
            "StorageError",
            "UnexpectedStatusException",
            "ValidationError",
        ],
        "batchtransform.errors",
    ),
}

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


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'batchtransform' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
