"""Default decoders and encoders of the Python runtime, chosen by content type.

They follow sagemaker-inference-toolkit's ``decoder``/``encoder`` so that an ``inference.py``
written for a SageMaker framework container sees the same arrays and writes the same bytes,
with these deliberate differences:

* Content types match on the media type alone, case-insensitively: ``text/csv;
  charset=utf-8`` is ``text/csv``. The toolkit compares the whole header string and fails
  any type that carries a parameter.
* JSON Lines (``application/jsonlines``, alias ``application/x-jsonlines``) is supported.
* ``application/x-npy`` refuses pickled (object) arrays: a request body is untrusted input,
  and unpickling it runs arbitrary code. The toolkit loads with ``allow_pickle=True``.
* Errors carry HTTP statuses a caller can act on: 415 for an unsupported content type, 406
  for an unsupported Accept, 400 for a body that does not decode, 500 for a prediction that
  does not encode. The toolkit answers all of them with 500.
* CSV is parsed by a fast parser whenever that gives exactly what ``np.genfromtxt`` gives,
  and by ``np.genfromtxt`` itself otherwise (see ``decode_csv``).
* CSV output is UTF-8 (``np.savetxt`` into a byte stream writes Latin-1), and a scalar
  prediction becomes one line (``np.savetxt`` refuses it).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from batchtransform.errors import ModelError
from batchtransform.runtimes.media import (
    ANY_TYPE,
    CSV,
    JSON,
    JSON_LINES,
    NPY,
    SUPPORTED_CONTENT_TYPES,
    media_type,
    parse_accept,
    resolve_accept,
)

__all__ = ["decode", "decode_csv", "encode"]

_NPY_MAGIC = b"\x93NUMPY"
# A body made only of these bytes has no text that pandas and float() could read differently:
# no letters but the exponent, no quotes, tabs or comment signs.
_PLAIN_NUMBER_BYTES = b"0123456789.,eE+- \r\n"
# pandas 3.1 parses floats with fast_float, which rounds exactly like float(); older pandas
# ("high" precision) can be off in the last bit, so it is not used for CSV.
_EXACT_PANDAS = (3, 1)


def decode(body: bytes | str, content_type: str | None) -> Any:
    """The default ``input_fn``: the request body as a numpy array.

    Raises ModelError with status 415 for a type it cannot read (or none) and 400 for a
    body that does not parse as its type.
    """
    name = media_type(content_type) if content_type else ""
    decoder = _DECODERS.get(name)
    if decoder is None:
        raise _unsupported("Content type", content_type, status=415)
    try:
        return decoder(body)
    except (ValueError, TypeError, OSError, EOFError) as exc:
        message = f"cannot decode the {name} request body: {type(exc).__name__}: {exc}"
        raise ModelError(message, status=400, body=message) from exc


def encode(prediction: Any, accept: str | None) -> tuple[bytes, str]:
    """The default ``output_fn``: the prediction as bytes of the first supported Accept type.

    Returns the body and the media type used. Raises ModelError with status 406 when no
    accepted type is supported and 500 when the prediction does not fit the type (a 3-D
    array as CSV, an object JSON cannot hold).
    """
    chosen = _choose_accept(accept)
    try:
        return _ENCODERS[media_type(chosen)](prediction), chosen
    except (ValueError, TypeError) as exc:
        message = f"cannot encode the prediction as {chosen}: {type(exc).__name__}: {exc}"
        raise ModelError(message, status=500, body=message) from exc


def _choose_accept(accept: str | None) -> str:
    """The first supported type in ``accept``; a ``*/*`` entry stands for the default."""
    resolved = resolve_accept(accept)
    for candidate in parse_accept(resolved):
        if candidate == ANY_TYPE:
            candidate = media_type(resolve_accept(None))
        if media_type(candidate) in _ENCODERS:
            return candidate
    raise _unsupported("Accept", resolved, status=406)


def _unsupported(what: str, value: str | None, *, status: int) -> ModelError:
    supported = ", ".join(SUPPORTED_CONTENT_TYPES) + ", application/x-jsonlines"
    shown = "missing" if not value else repr(value)
    message = (
        f"{what} {shown} is not supported by the default handlers (supported: {supported}); "
        f"use a supported type or define {'input_fn' if status == 415 else 'output_fn'} "
        "in inference.py"
    )
    return ModelError(message, status=status, body=message)


# Decoders


def decode_csv(body: bytes | str) -> Any:
    """CSV as ``np.genfromtxt(StringIO(text), delimiter=",")`` reads it, but fast.

    Same values (float64, NaN for fields that are not numbers), same shape (a single row or a
    single column becomes 1-D, a single value 0-D). ``np.genfromtxt`` parses each value in
    Python and is slow, so two C parsers go first, each only where it provably agrees:
    pandas (3.1 and later) for bodies of plain numbers, then ``np.loadtxt``, which fails
    rather than differ. ``np.genfromtxt`` is the last resort, for fields that are not numbers
    and the like.

    An empty body (or only blank and comment lines) gives an empty float64 array of shape
    (0,), which is what ``np.genfromtxt`` returns, without its "Empty input file" warning.
    """
    data = body.encode("utf-8") if isinstance(body, str) else body
    if not data.strip(b" \r\n"):
        return np.empty(0)
    for parse in (_csv_with_pandas, _csv_with_loadtxt):
        array = parse(data)
        if array is not None:
            return array
    return _csv_with_genfromtxt(data)


@functools.cache
def _exact_pandas_read_csv() -> Callable[..., Any] | None:
    """pandas.read_csv if pandas is installed and parses floats exactly; pandas is optional."""
    try:
        import pandas
    except ImportError:
        return None
    version = re.match(r"(\d+)\.(\d+)", pandas.__version__)
    if version is None or (int(version[1]), int(version[2])) < _EXACT_PANDAS:
        return None
    read_csv: Callable[..., Any] = pandas.read_csv
    return read_csv


def _csv_with_pandas(data: bytes) -> Any:
    """The fastest parser, or None where it might not agree with genfromtxt.

    pandas reads quotes, booleans, NA spellings and blank lines its own way, so it only sees
    bodies of plain numbers; and it pads short rows with NaN where genfromtxt fails, hence
    the comma count.
    """
    read_csv = _exact_pandas_read_csv()
    if read_csv is None or data.translate(None, _PLAIN_NUMBER_BYTES) or _has_lone_cr(data):
        return None
    try:
        frame = read_csv(io.BytesIO(data), header=None, dtype=np.float64, quoting=csv.QUOTE_NONE)
    except ValueError:
        return None
    rows, columns = frame.shape
    if data.count(b",") != rows * (columns - 1):
        return None
    return np.squeeze(np.ascontiguousarray(frame.to_numpy(dtype=np.float64)))


def _csv_with_loadtxt(data: bytes) -> Any:
    """numpy's C parser: it converts like float() and fails on anything genfromtxt would
    read differently (empty or non-numeric fields, blank-looking lines), or None then.

    Bodies with comments go to genfromtxt, because loadtxt warns when comments leave no
    data, and warnings cannot be silenced thread-safely.
    """
    if b"#" in data or _has_lone_cr(data):
        return None
    try:
        text = data.decode("utf-8")
        return np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64)
    except ValueError:
        return None


def _has_lone_cr(data: bytes) -> bool:
    """genfromtxt splits lines on "\\n" only; the C parsers also split on a lone "\\r"."""
    return b"\r" in data and data.count(b"\r") != data.count(b"\r\n")


def _csv_with_genfromtxt(data: bytes) -> Any:
    """The toolkit's own parser, for everything the fast parsers decline."""
    text = data.decode("utf-8")
    if not _has_csv_rows(text):
        return np.empty(0)
    return np.genfromtxt(io.StringIO(text), delimiter=",")


def _has_csv_rows(text: str) -> bool:
    """Whether genfromtxt finds a row: a line with more than comment, spaces and line ends."""
    return any(line.split("#", 1)[0].strip(" \r\n") for line in text.split("\n"))


def _decode_json(body: bytes | str) -> Any:
    return np.array(json.loads(body))


def _decode_json_lines(body: bytes | str) -> Any:
    """One JSON value per non-blank line. Split on "\\n" only: JSON strings may hold U+2028."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return np.array([json.loads(line) for line in text.split("\n") if line.strip()])


def _decode_npy(body: bytes | str) -> Any:
    data = body.encode("latin-1") if isinstance(body, str) else body
    if not data.startswith(_NPY_MAGIC):
        raise ValueError("the body is not a .npy file (it does not start with \\x93NUMPY)")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise ValueError("pickled (object) arrays are refused: unpickling runs code") from exc


_DECODERS: dict[str, Callable[[bytes | str], Any]] = {
    CSV: decode_csv,
    JSON: _decode_json,
    JSON_LINES: _decode_json_lines,
    NPY: _decode_npy,
}


# Encoders


def _numpy_default(value: Any) -> Any:
    """JSON for numpy arrays and scalars, as the toolkit's encoder does (via ``tolist``)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encode_json(prediction: Any) -> bytes:
    if isinstance(prediction, np.ndarray):
        prediction = prediction.tolist()
    return json.dumps(prediction, default=_numpy_default).encode("utf-8")


def _encode_json_lines(prediction: Any) -> bytes:
    """One JSON value per row (first axis); a scalar or a mapping is one line."""
    if isinstance(prediction, np.ndarray):
        prediction = prediction.tolist()
    rows = prediction if isinstance(prediction, list | tuple) else [prediction]
    return "".join(json.dumps(row, default=_numpy_default) + "\n" for row in rows).encode()


def _encode_npy(prediction: Any) -> bytes:
    """``np.save`` as in the toolkit; pickling is allowed here because the output is the
    model's own, not untrusted input."""
    buffer = io.BytesIO()
    np.save(buffer, prediction)
    return buffer.getvalue()


def _encode_csv(prediction: Any) -> bytes:
    """``np.savetxt(fmt="%s", delimiter=",")``: a row per line, a 1-D array a value per line.

    float64, integer, boolean and string arrays are formatted in bulk (``repr`` of a Python
    float and ``astype(str)`` write exactly what ``"%s" % value`` writes); other dtypes go
    through ``np.savetxt`` itself.
    """
    array = np.asarray(prediction)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim > 2:
        raise ValueError(f"text/csv holds 1-D or 2-D predictions, not shape {array.shape}")
    if array.shape[0] == 0 or array.dtype.names is not None:
        return _csv_with_savetxt(array)
    if array.dtype == np.float64:
        return _join_csv(array.tolist(), text_of=repr)
    if array.dtype.kind in "iubU":
        return _join_csv(array.astype(str).tolist(), text_of=str)
    return _csv_with_savetxt(array)


def _join_csv(cells: list[Any], *, text_of: Callable[[Any], str]) -> bytes:
    """Lines from the ``tolist()`` of a 1-D or 2-D array."""
    lines: Iterable[str]
    if not cells or not isinstance(cells[0], list):
        lines = map(text_of, cells)
    else:
        lines = (",".join(map(text_of, row)) for row in cells)
    return ("\n".join(lines) + "\n").encode("utf-8")


def _csv_with_savetxt(array: Any) -> bytes:
    stream = io.StringIO()
    np.savetxt(stream, array, fmt="%s", delimiter=",")
    return stream.getvalue().encode("utf-8")


_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    CSV: _encode_csv,
    JSON: _encode_json,
    JSON_LINES: _encode_json_lines,
    NPY: _encode_npy,
}
