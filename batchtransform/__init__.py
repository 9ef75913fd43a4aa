"""batchtransform: self-hosted batch inference with the Amazon SageMaker Batch Transform API.

from batchtransform import Session, Transformer
"""

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
