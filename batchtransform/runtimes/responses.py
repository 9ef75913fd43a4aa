"""What an in-process handler may return, turned into the response body and its type.

The serving stacks behind SageMaker's images accept more than bytes from ``output_fn`` and
``transform_fn``, and scripts rely on it:

* ``bytes``, ``bytearray``, ``memoryview`` or ``str`` (UTF-8): the body as it is;
* a ``(body, content_type)`` tuple, as the inference toolkit and sagemaker-containers'
  transformer allow: the body as above, and the content type the handler answered with;
* a werkzeug- or Flask-style ``Response`` (sagemaker-containers' ``worker.Response`` is a
  Flask one, and so is our stand-in for it): the body from ``get_data()``, the type from
  ``mimetype`` (else ``content_type``); a status outside 2xx is the model's error with that
  status, as the container's HTTP answer would have been;
* any other value is written as JSON, as the image's server would write it: the model
  servers behind the inference toolkit (MMS, TorchServe) with ``json.dumps(value,
  indent=2)``, over many lines; the scikit-learn and XGBoost images with compact one-line
  ``json.dumps(value)`` (their own ``encoders.encode`` writes JSON so). The runtime says
  which with ``json_indent``. numpy values are written through ``tolist()``.
"""

from __future__ import annotations

import json
from typing import Any

from batchtransform.errors import ModelError

__all__ = ["TOOLKIT_JSON_INDENT", "response_body"]

# The inference toolkit's model servers (MMS, TorchServe) write a returned object with this.
TOOLKIT_JSON_INDENT = 2
_ERROR_BODY_SHOWN = 500


def response_body(result: Any, json_indent: int | None) -> tuple[bytes, str | None]:
    """``(body, content type or None)`` from a handler's result; raises ModelError for a
    Response with an error status and for a value JSON cannot hold."""
    if _is_response(result):
        return _from_response(result)
    content_type = None
    if isinstance(result, tuple):
        if len(result) == 2 and isinstance(result[1], str):
            content_type = result[1]
        result = result[0] if result else result
        if _is_response(result):
            body, answered = _from_response(result)
            return body, content_type or answered
    return _as_bytes(result, json_indent), content_type


def _is_response(value: Any) -> bool:
    """A werkzeug-style response: ``get_data()`` and an integer ``status_code``."""
    return callable(getattr(value, "get_data", None)) and isinstance(
        getattr(value, "status_code", None), int
    )


def _from_response(response: Any) -> tuple[bytes, str | None]:
    body = response.get_data()
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    status: int = response.status_code
    if not 200 <= status <= 299:
        text = data[:_ERROR_BODY_SHOWN].decode("utf-8", "replace")
        message = f"the handler answered with a Response of status {status}: {text}"
        raise ModelError(message, status=status if 400 <= status <= 599 else 500, body=text)
    content_type = getattr(response, "mimetype", None) or getattr(response, "content_type", None)
    return data, content_type if isinstance(content_type, str) and content_type else None


def _as_bytes(result: Any, json_indent: int | None) -> bytes:
    if isinstance(result, bytes):
        return result
    if isinstance(result, bytearray | memoryview):
        return bytes(result)
    if isinstance(result, str):
        return result.encode("utf-8")
    try:
        return json.dumps(result, indent=json_indent, default=_tolist).encode("utf-8")
    except (TypeError, ValueError) as exc:
        message = f"the handlers returned a {type(result).__name__}, not bytes or str: {exc}"
        raise ModelError(message, status=500, body=message) from exc


def _tolist(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
