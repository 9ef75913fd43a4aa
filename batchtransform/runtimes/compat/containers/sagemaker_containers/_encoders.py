"""sagemaker-containers' encoders (``beta.framework.encoders``): numpy arrays to and from
the default content types, as the scikit-learn image's default handlers use them.

Same functions and results as the original: ``csv_to_numpy`` reads rows with ``csv.reader``
and squeezes them (one row becomes 1-D), cast to float64 when every field is a number and
left as strings otherwise; ``array_to_csv`` writes through ``csv.writer`` with ``\\n`` line
ends, a 1-D array one value a line; ``array_to_json`` is compact ``json.dumps`` with numpy
values through ``tolist()``; ``encode``/``decode`` raise ``UnsupportedFormatError`` for other
types. Differences: content types are matched without their parameters
(``text/csv; charset=utf-8`` is CSV) where the original failed them; ``decode`` accepts
bytes as well as str; ``npy_to_numpy`` refuses pickled (object) arrays, since a request
body is untrusted; ``array_to_recordio_protobuf`` is not provided.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _content_types, _errors

__all__ = [
    "array_to_csv",
    "array_to_json",
    "array_to_npy",
    "csv_to_numpy",
    "decode",
    "encode",
    "json_to_numpy",
    "npy_to_numpy",
]


def array_to_npy(array_like: Any) -> bytes:
    """The array in NPY format (``np.save``)."""
    buffer = io.BytesIO()
    np.save(buffer, array_like)
    return buffer.getvalue()


def npy_to_numpy(npy_array: bytes) -> Any:
    """An NPY body as an array; pickled arrays are refused (the original loads them)."""
    return np.load(io.BytesIO(npy_array), allow_pickle=False)


def array_to_json(array_like: Any) -> str:
    """Compact JSON; numpy arrays and scalars through ``tolist()``."""

    def default(value: Any) -> Any:
        if hasattr(value, "tolist"):
            return value.tolist()
        return json.JSONEncoder().default(value)

    return json.dumps(array_like, default=default)


def json_to_numpy(string_like: str | bytes, dtype: Any = None) -> Any:
    """``np.array(json.loads(string_like), dtype=dtype)``."""
    return np.array(json.loads(string_like), dtype=dtype)


def csv_to_numpy(string_like: str | bytes, dtype: Any = None) -> Any:
    """CSV rows as an array, squeezed; float64 (or ``dtype``) when the fields are numbers.

    As in the original, fields that are not numbers leave an array of strings when no
    ``dtype`` is asked for, and raise ClientError when one is.
    """
    text = string_like.decode("utf-8") if isinstance(string_like, bytes) else string_like
    try:
        reader = csv.reader(
            io.StringIO(text), delimiter=",", quotechar='"', doublequote=True, strict=True
        )
        array = np.array(list(reader)).squeeze()
    except Exception as exc:
        raise _errors.ClientError(f"Error while decoding csv: {exc}") from exc
    try:
        return array.astype(dtype)
    except ValueError as exc:
        if dtype is not None:
            raise _errors.ClientError(
                f"Error while writing numpy array: {exc}. dtype is: {dtype}"
            ) from exc
        return array


def array_to_csv(array_like: Any) -> str:
    """One row a line through ``csv.writer``; a 1-D array is one value a line."""
    array = np.array(array_like)
    if len(array.shape) == 1:
        array = np.reshape(array, (array.shape[0], 1))
    stream = io.StringIO()
    writer = csv.writer(
        stream, lineterminator="\n", delimiter=",", quotechar='"', doublequote=True, strict=True
    )
    try:
        writer.writerows(array)
    except csv.Error as exc:
        raise _errors.ClientError(f"Error while encoding csv: {exc}") from exc
    return stream.getvalue()


_ENCODERS: dict[str, Callable[[Any], Any]] = {
    _content_types.NPY: array_to_npy,
    _content_types.CSV: array_to_csv,
    _content_types.JSON: array_to_json,
}
_DECODERS: dict[str, Callable[[Any], Any]] = {
    _content_types.NPY: npy_to_numpy,
    _content_types.CSV: csv_to_numpy,
    _content_types.JSON: json_to_numpy,
}


def decode(obj: Any, content_type: str | None) -> Any:
    """The body of one of the default content types as a numpy array."""
    decoder = _DECODERS.get(_media_type(content_type))
    if decoder is None:
        raise _errors.UnsupportedFormatError(content_type, status_code=415)
    return decoder(obj)


def encode(array_like: Any, content_type: str | None) -> Any:
    """The array in ``content_type``: str for CSV and JSON, bytes for NPY."""
    encoder = _ENCODERS.get(_media_type(content_type))
    if encoder is None:
        raise _errors.UnsupportedFormatError(content_type, status_code=406)
    return encoder(array_like)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()
