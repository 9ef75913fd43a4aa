"""sagemaker-containers' ``worker`` (``beta.framework.worker``): the ``Response`` that
``output_fn`` and ``transform_fn`` return in the scikit-learn image.

The original ``Response`` is a Flask response whose default mimetype is JSON. This one keeps
its constructor (``response, accept, status, headers, mimetype, direct_passthrough``; a given
``accept`` warns that it is ignored, as there) and the parts of a werkzeug response that a
server reads: ``get_data()``, ``data``, ``status_code``, ``status``, ``mimetype``,
``content_type`` and ``headers``. The body is built as werkzeug builds it: str is UTF-8,
bytes are kept, any other iterable is joined item by item. The Flask application
(``Worker``) and ``Request`` are not provided: the runtime serves requests itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from . import _content_types

__all__ = ["Response", "default_healthcheck_fn"]

_TEXT_APPLICATION_TYPES = frozenset(
    {"application/xml", "application/javascript", "application/ecmascript", "application/sql"}
)


class Response:
    """What a handler returns: a body, an HTTP status and a mimetype (JSON by default)."""

    default_mimetype = _content_types.JSON

    def __init__(
        self,
        response: Any = None,
        accept: str | None = None,
        status: int | str = HTTPStatus.OK,
        headers: Mapping[str, str] | None = None,
        mimetype: str | None = None,
        direct_passthrough: bool = False,
    ) -> None:
        if accept:
            warnings.warn(
                'ignoring deprecated "accept" argument to Response.__init__',
                DeprecationWarning,
                stacklevel=2,
            )
        self.headers: dict[str, str] = dict(headers or {})
        self.mimetype: str = mimetype or self.headers.get("Content-Type") or self.default_mimetype
        self.status_code, self.status = _status(status)
        self.direct_passthrough = direct_passthrough
        self._data = _body(response)

    @property
    def content_type(self) -> str:
        """The mimetype, with ``charset=utf-8`` for text types, as werkzeug writes it."""
        if self.mimetype.startswith("text/") or self.mimetype in _TEXT_APPLICATION_TYPES:
            return f"{self.mimetype}; charset=utf-8"
        return self.mimetype

    @property
    def data(self) -> bytes:
        """The body as bytes."""
        return self._data

    def get_data(self, as_text: bool = False) -> bytes | str:
        """The body as bytes, or as text decoded from UTF-8."""
        return self._data.decode("utf-8") if as_text else self._data

    def set_data(self, value: str | bytes) -> None:
        """Replace the body."""
        self._data = _body(value)

    def __repr__(self) -> str:
        return f"<Response {len(self._data)} bytes [{self.status}]>"


def default_healthcheck_fn() -> Response:
    """The original's ping answer: 200 with no content."""
    return Response(status=HTTPStatus.OK)


def _status(status: int | str) -> tuple[int, str]:
    """``(200, "200 OK")`` from ``200`` or ``"200 OK"``, as werkzeug reads a status."""
    if isinstance(status, int):
        try:
            return status, f"{status} {HTTPStatus(status).phrase}"
        except ValueError:
            return status, f"{status} UNKNOWN"
    code = status.strip().split(" ", 1)[0]
    if not code.isdigit():
        raise ValueError(f"a Response status must start with its code, not {status!r}")
    return int(code), status.strip()


def _body(response: Any) -> bytes:
    if response is None:
        return b""
    if isinstance(response, str):
        return response.encode("utf-8")
    if isinstance(response, bytes | bytearray | memoryview):
        return bytes(response)
    if not isinstance(response, Iterable):
        raise TypeError(
            f"a Response body must be str, bytes or an iterable of them, not "
            f"{type(response).__name__}"
        )
    return b"".join(_body_part(item) for item in response)


def _body_part(item: Any) -> bytes:
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    raise TypeError(f"a Response body item must be str or bytes, not {type(item).__name__}")
