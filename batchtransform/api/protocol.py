"""The AWS JSON 1.1 protocol on the wire: requests in, JSON bodies and error bodies out.

What botocore expects from a JSON 1.1 service (reference §1.1): ``POST /`` with
``X-Amz-Target: SageMaker.<Operation>`` (CloudWatch Logs: ``Logs_20140328.<Operation>``)
and ``Content-Type: application/x-amz-json-1.1``;
bodies are JSON objects with timestamps as epoch seconds; errors are
``{"__type": code, "message": text}`` with a 4xx/5xx status. Every response carries an
``x-amzn-RequestId`` header (the server adds it), which botocore reports as
``ResponseMetadata.RequestId``.

Errors the HTTP layer itself raises, before an operation runs (named as Smithy's
protocol tests name them, where they do):

==============================  ======  ===========================================
code                            status  when
==============================  ======  ===========================================
UnknownOperationException       400     no, or an unsupported, ``X-Amz-Target``
SerializationException          400     the body is not a JSON object
NotFoundException               404     no route for the path
MethodNotAllowedException       405     a route, but not for this method
LengthRequiredException         411     a chunked body (botocore sends a length)
RequestEntityTooLargeException  413     a body over 16 MiB
UnsupportedMediaTypeException   415     the content type is not JSON 1.1
NotImplementedException         501     a planned route (real-time endpoints)
InternalFailure                 500     a bug; the server logs the traceback
==============================  ======  ===========================================

Errors of the package (``BatchTransformError``) travel with their own ``code`` and
``status``, plus two headers that botocore keeps in ``ResponseMetadata.HTTPHeaders`` and
boto3 users can ignore: the exception class and the offending field, so that our own
remote client raises exactly the exception the embedded service raises.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from batchtransform.errors import BatchTransformError, ValidationError

__all__ = [
    "CONTENT_TYPE",
    "ERROR_CLASS_HEADER",
    "ERROR_FIELD_HEADER",
    "LOGS_TARGET_PREFIX",
    "TARGET_PREFIX",
    "ApiError",
    "JsonApi",
    "Request",
    "Response",
    "check_content_type",
    "decode_body",
    "error_response",
    "exception_response",
    "json_response",
    "operation_of",
]

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "SageMaker."
LOGS_TARGET_PREFIX = "Logs_20140328."
ERROR_CLASS_HEADER = "X-Batchtransform-Error"
ERROR_FIELD_HEADER = "X-Batchtransform-Error-Field"


@dataclass(frozen=True)
class Request:
    """One HTTP request as the server read it: ``path`` without the query string."""

    method: str
    path: str
    query: str
    headers: Message
    body: bytes

    @property
    def target(self) -> str:
        """The raw path with its query, as the client signed it."""
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass(frozen=True)
class Response:
    """One HTTP response; the server adds the request id and the content length."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JsonApi:
    """One AWS JSON 1.1 API served on ``POST /``: the ``X-Amz-Target`` prefix that selects
    it, the signing name its requests are signed for, its operations and what runs one."""

    target_prefix: str
    signing_name: str
    operations: tuple[str, ...]
    call: Callable[[str, dict[str, Any]], dict[str, Any]]

    def serves(self, request: Request) -> bool:
        return (request.headers.get("X-Amz-Target") or "").startswith(self.target_prefix)


class ApiError(Exception):
    """A request the HTTP layer refuses before any operation runs (protocol or auth)."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def check_content_type(request: Request) -> None:
    """Refuse a body that is not JSON 1.1; parameters (``; charset=utf-8``) are ignored."""
    content_type = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip()
    if content_type.lower() != CONTENT_TYPE:
        raise ApiError(
            "UnsupportedMediaTypeException",
            415,
            f"Content-Type must be {CONTENT_TYPE} (AWS JSON 1.1), not {content_type!r}.",
        )


def operation_of(request: Request, prefix: str = TARGET_PREFIX) -> str:
    """The operation that ``X-Amz-Target: <prefix><Operation>`` names."""
    target = request.headers.get("X-Amz-Target") or ""
    if not target.startswith(prefix) or target == prefix:
        raise ApiError(
            "UnknownOperationException",
            400,
            f"X-Amz-Target must be {TARGET_PREFIX}<Operation> or {LOGS_TARGET_PREFIX}<Operation>, "
            f"not {target!r}.",
        )
    return target.removeprefix(prefix)


def decode_body(body: bytes) -> dict[str, Any]:
    """The request document: a JSON object; an empty body means ``{}``."""
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError("SerializationException", 400, f"The body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ApiError(
            "SerializationException",
            400,
            f"The body must be a JSON object, not {type(document).__name__}.",
        )
    return document


def json_response(document: Mapping[str, Any], status: int = 200) -> Response:
    """A JSON 1.1 response; datetimes become epoch seconds, as AWS sends them."""
    body = json.dumps(document, default=_epoch_seconds, separators=(",", ":")).encode()
    return Response(status, body, {"Content-Type": CONTENT_TYPE})


def error_response(
    code: str, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An error as botocore parses it: ``__type`` is the code; ``x-amzn-ErrorType`` lets
    REST-JSON clients (the future runtime API) read the same code from the headers."""
    response = json_response({"__type": code, "message": message}, status)
    response.headers["x-amzn-ErrorType"] = code
    response.headers.update(headers or {})
    return response


def exception_response(exc: BatchTransformError) -> Response:
    """A package error with its code and status, and its class for our own client."""
    headers = {ERROR_CLASS_HEADER: type(exc).__name__}
    if isinstance(exc, ValidationError) and exc.field and _is_header_safe(exc.field):
        headers[ERROR_FIELD_HEADER] = exc.field
    return error_response(exc.code, exc.status, str(exc), headers)


def _is_header_safe(text: str) -> bool:
    """A field path may hold a user's map key; only plain ASCII goes into a header."""
    return text.isascii() and text.isprintable()


def _epoch_seconds(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
