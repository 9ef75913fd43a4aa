"""SageMaker's RecordIO-protobuf format (``application/x-recordio-protobuf``), read without
the protobuf or mlio libraries, for the XGBoost image (its algorithm mode and the
``sagemaker_xgboost_container.encoder`` stand-in).

A body is dmlc RecordIO frames (read by ``batchtransform.data.recordio``), each holding one
serialized ``aialgs.data.Record``: ``features`` (field 1) is a map from name to ``Value``,
whose ``float32_tensor`` (2), ``float64_tensor`` (3) or ``int32_tensor`` (7) has packed
``values`` (1), ``keys`` (2) and ``shape`` (3). Only the ``values`` feature is read, as
the XGBoost image reads it; labels and other fields are skipped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchtransform.data.recordio import split_payloads

__all__ = ["feature_matrix"]

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_TENSOR_TYPES = {2: np.float32, 3: np.float64, 7: np.int32}


@dataclass
class _Tensor:
    """One record's ``values`` feature."""

    dtype: Any
    values: list[Any] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)
    shape: list[int] = field(default_factory=list)


def feature_matrix(body: bytes) -> Any:
    """The records' ``values`` as rows: a dense array, or a CSR matrix if any has keys."""
    tensors = [_values_tensor(record, number) for number, record in _records(body)]
    if not tensors:
        raise ValueError("the recordio-protobuf body holds no records")
    if not any(tensor.keys for tensor in tensors):
        return np.vstack([np.asarray(t.values, dtype=t.dtype) for t in tensors])
    return _sparse(tensors)


def _records(body: bytes) -> list[tuple[int, bytes]]:
    return list(enumerate(split_payloads([body], None), start=1))


def _sparse(tensors: list[_Tensor]) -> Any:
    from scipy.sparse import csr_matrix

    rows, columns, values = [], [], []
    width = 0
    for row, tensor in enumerate(tensors):
        keys = tensor.keys or list(range(len(tensor.values)))
        rows.extend([row] * len(keys))
        columns.extend(keys)
        values.extend(tensor.values)
        width = max(width, tensor.shape[0] if tensor.shape else 0, max(keys, default=-1) + 1)
    return csr_matrix((values, (rows, columns)), shape=(len(tensors), width))


def _values_tensor(record: bytes, number: int) -> _Tensor:
    for field_number, payload in _fields(record):
        if field_number != 1 or not isinstance(payload, bytes):
            continue
        key, value = _map_entry(payload)
        if key == "values" and value is not None:
            return _tensor(value)
    raise ValueError(f"record {number} has no 'values' feature")


def _map_entry(entry: bytes) -> tuple[str | None, bytes | None]:
    key: str | None = None
    value: bytes | None = None
    for field_number, payload in _fields(entry):
        if field_number == 1 and isinstance(payload, bytes):
            key = payload.decode("utf-8")
        elif field_number == 2 and isinstance(payload, bytes):
            value = payload
    return key, value


def _tensor(value: bytes) -> _Tensor:
    for field_number, payload in _fields(value):
        dtype = _TENSOR_TYPES.get(field_number)
        if dtype is not None and isinstance(payload, bytes):
            return _tensor_fields(payload, dtype)
    raise ValueError("the 'values' feature is not a float32, float64 or int32 tensor")


def _tensor_fields(payload: bytes, dtype: Any) -> _Tensor:
    tensor = _Tensor(dtype)
    for field_number, item in _fields(payload):
        if field_number == 1:
            tensor.values.extend(_numbers(item, dtype))
        elif field_number == 2:
            tensor.keys.extend(_unsigned(item))
        elif field_number == 3:
            tensor.shape.extend(_unsigned(item))
    return tensor


def _numbers(item: bytes | int, dtype: Any) -> list[Any]:
    """Packed (bytes) or single (int bits) numbers of the tensor's type."""
    if dtype is np.int32:
        values = _varints(item) if isinstance(item, bytes) else [item]
        return [value - (1 << 64) if value >= 1 << 63 else value for value in values]
    size, code = (4, "<f") if dtype is np.float32 else (8, "<d")
    data = item if isinstance(item, bytes) else item.to_bytes(size, "little")
    return [value for (value,) in struct.iter_unpack(code, data)]


def _unsigned(item: bytes | int) -> list[int]:
    return _varints(item) if isinstance(item, bytes) else [item]


def _varints(data: bytes) -> list[int]:
    values, offset = [], 0
    while offset < len(data):
        value, offset = _varint(data, offset)
        values.append(value)
    return values


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data):
            raise ValueError("a protobuf varint runs past the end of the record")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def _fields(message: bytes) -> list[tuple[int, bytes | int]]:
    """``(field number, payload)`` pairs: bytes for length-delimited fields, the integer
    (or raw bits) for the others."""
    fields: list[tuple[int, bytes | int]] = []
    offset = 0
    while offset < len(message):
        key, offset = _varint(message, offset)
        wire_type, number = key & 7, key >> 3
        if wire_type == _VARINT:
            value, offset = _varint(message, offset)
            fields.append((number, value))
        elif wire_type == _LENGTH:
            length, offset = _varint(message, offset)
            if offset + length > len(message):
                raise ValueError("a protobuf field runs past the end of the record")
            fields.append((number, message[offset : offset + length]))
            offset += length
        elif wire_type in (_FIXED32, _FIXED64):
            size = 4 if wire_type == _FIXED32 else 8
            fields.append((number, int.from_bytes(message[offset : offset + size], "little")))
            offset += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
    return fields
