"""``sagemaker_xgboost_container.encoder``: request bodies as XGBoost DMatrix objects.

As in the original: ``csv_to_dmatrix`` sniffs the delimiter from the first line (an
alphanumeric one means ``,``), reads empty fields as NaN and rows on ``\\n``;
``libsvm_to_dmatrix`` reads ``label[:weight] index:value ...`` lines, labels and
weights included;
``decode`` picks by content type (``text/csv``, ``text/libsvm``, ``text/x-libsvm``,
``application/x-recordio-protobuf``) and raises sagemaker-containers'
``UnsupportedFormatError`` for others; ``json_to_jsonlines`` turns a one-key JSON answer
into JSON Lines. Differences: a one-column CSV (nothing to sniff) is read with commas
where the original fails; ``libsvm_to_dmatrix`` takes str as well as bytes and parses
the lines itself (XGBoost 3.1 deprecated the text-file reader the original hands them to);
and
``recordio_protobuf_to_dmatrix`` reads the records with our own RecordIO and protobuf
readers instead of the mlio library (dense and sparse ``values`` features, labels ignored).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import xgboost as xgb
from sagemaker_containers import _errors

from batchtransform.runtimes import record_protobuf

from .constants import xgb_content_types

__all__ = [
    "csv_to_dmatrix",
    "decode",
    "json_to_jsonlines",
    "libsvm_to_dmatrix",
    "recordio_protobuf_to_dmatrix",
]

_CSV = "text/csv"


def _clean_csv_string(csv_string: str, delimiter: str) -> list[str]:
    return ["nan" if x == "" else x for x in csv_string.split(delimiter)]


def csv_to_dmatrix(input: str | bytes, dtype: Any = None) -> Any:
    """CSV rows (no trailing newline) as a DMatrix; the delimiter is sniffed."""
    text = input.decode() if isinstance(input, bytes) else input
    try:
        sniffed = csv.Sniffer().sniff(text.split("\n")[0][:512]).delimiter
    except csv.Error:  # one column: nothing to sniff
        sniffed = ","
    delimiter = "," if sniffed.isalnum() else sniffed
    rows = [_clean_csv_string(line, delimiter) for line in text.split("\n")]
    return xgb.DMatrix(np.array(rows).astype(dtype))


def libsvm_to_dmatrix(string_like: bytes | str) -> Any:
    """libsvm lines (``label[:weight] [qid:n] index:value ...``) as a DMatrix with their
    labels (and weights), read as XGBoost's own libsvm parser reads them."""
    text = string_like if isinstance(string_like, str) else bytes(string_like).decode("utf-8")
    rows = _LibsvmRows()
    for line in text.split("\n"):
        rows.add(line)
    return rows.dmatrix()


class _LibsvmRows:
    """The lines of a libsvm body, gathered into a sparse matrix, labels and weights."""

    def __init__(self) -> None:
        self.labels: list[float] = []
        self.weights: list[float] = []
        self.rows: list[int] = []
        self.columns: list[int] = []
        self.values: list[float] = []

    def add(self, line: str) -> None:
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            return
        label, _, weight = tokens[0].partition(":")
        self.labels.append(float(label))
        if weight:
            self.weights.append(float(weight))
        for token in tokens[1:]:
            index, separator, value = token.partition(":")
            if not separator:
                raise ValueError(f"libsvm line {len(self.labels)}: {token!r} is not index:value")
            if index == "qid":
                continue
            self.rows.append(len(self.labels) - 1)
            self.columns.append(int(index))
            self.values.append(float(value))

    def dmatrix(self) -> Any:
        from scipy.sparse import csr_matrix

        if self.weights and len(self.weights) != len(self.labels):
            raise ValueError("libsvm: either every line or none has an instance weight")
        width = max(self.columns, default=-1) + 1
        matrix = csr_matrix(
            (self.values, (self.rows, self.columns)), shape=(len(self.labels), width)
        )
        weights = self.weights or None
        return xgb.DMatrix(matrix, label=self.labels, weight=weights)


def recordio_protobuf_to_dmatrix(string_like: bytes) -> Any:
    """RecordIO-wrapped protobuf Records (SageMaker's format) as a DMatrix of their
    ``values`` features: dense rows, or a sparse matrix when the records have keys."""
    return xgb.DMatrix(record_protobuf.feature_matrix(bytes(string_like)))


def json_to_jsonlines(json_data: dict[str, Any] | str | bytes) -> bytes:
    """A JSON answer with one key whose value is a list, as one JSON line per element."""
    answer = json_data if isinstance(json_data, dict) else json.loads(json_data)
    if len(answer.keys()) != 1:
        raise ValueError("JSON response is not compatible for conversion to jsonlines.")
    stream = io.BytesIO()
    for value in answer.values():
        for entry in value:
            stream.write((json.dumps(entry) + "\n").encode("utf-8"))
    return stream.getvalue()


_DECODERS: dict[str, Callable[[Any], Any]] = {
    _CSV: csv_to_dmatrix,
    xgb_content_types.LIBSVM: libsvm_to_dmatrix,
    xgb_content_types.X_LIBSVM: libsvm_to_dmatrix,
    xgb_content_types.X_RECORDIO_PROTOBUF: recordio_protobuf_to_dmatrix,
}


def decode(obj: Any, content_type: str) -> Any:
    """The body as a DMatrix, by its content type (parameters ignored, as there)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    decoder = _DECODERS.get(media_type)
    if decoder is None:
        raise _errors.UnsupportedFormatError(media_type)
    return decoder(obj)
