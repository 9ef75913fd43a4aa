"""``sagemaker_xgboost_container.data_utils``, its content-type part: the short names of
the formats and ``get_content_type``, which reads a ContentType as the image does. The
training data loaders (``get_dmatrix`` and the per-format readers) are not provided.
"""

from __future__ import annotations

from .constants import xgb_content_types

__all__ = [
    "CSV",
    "LIBSVM",
    "PARQUET",
    "RECORDIO_PROTOBUF",
    "VALID_CONTENT_TYPES",
    "UserError",
    "get_content_type",
]

CSV = "csv"
LIBSVM = "libsvm"
PARQUET = "parquet"
RECORDIO_PROTOBUF = "recordio-protobuf"
_TEXT_CSV = "text/csv"

VALID_CONTENT_TYPES = [
    CSV,
    LIBSVM,
    PARQUET,
    RECORDIO_PROTOBUF,
    _TEXT_CSV,
    xgb_content_types.LIBSVM,
    xgb_content_types.X_LIBSVM,
    xgb_content_types.X_PARQUET,
    xgb_content_types.X_RECORDIO_PROTOBUF,
]

_SHORT_NAMES = {
    CSV: CSV,
    _TEXT_CSV: CSV,
    LIBSVM: LIBSVM,
    xgb_content_types.LIBSVM: LIBSVM,
    xgb_content_types.X_LIBSVM: LIBSVM,
    PARQUET: PARQUET,
    xgb_content_types.X_PARQUET: PARQUET,
    RECORDIO_PROTOBUF: RECORDIO_PROTOBUF,
    xgb_content_types.X_RECORDIO_PROTOBUF: RECORDIO_PROTOBUF,
}


class UserError(ValueError):
    """A content type the image does not read (the original raises its toolkit's UserError)."""


def get_content_type(content_type_cfg_val: str | None) -> str:
    """``csv``, ``libsvm``, ``parquet`` or ``recordio-protobuf`` for a ContentType (None is
    libsvm); a CSV ``label_size`` other than 1 is refused, as there."""
    if content_type_cfg_val is None:
        return LIBSVM
    media_type, _, parameters = content_type_cfg_val.lower().partition(";")
    name = _SHORT_NAMES.get(media_type.strip())
    if name is None:
        raise UserError(
            f"{content_type_cfg_val} is not an accepted ContentType: "
            + ", ".join(VALID_CONTENT_TYPES)
            + "."
        )
    label_size = _parameter(parameters, "label_size")
    if name == CSV and label_size not in (None, "1"):
        raise UserError(
            f"{content_type_cfg_val} is not an accepted csv ContentType. "
            "Optional parameter label_size must be equal to 1"
        )
    return name


def _parameter(parameters: str, name: str) -> str | None:
    for part in parameters.split(";"):
        key, _, value = part.partition("=")
        if key.strip() == name:
            return value.strip().strip('"')
    return None
