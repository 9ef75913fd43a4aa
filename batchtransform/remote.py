"""``RemoteService``: the ``Service.call`` interface over HTTP, to a ``batchtransform server``.

The requests go out through real botocore clients (``sagemaker``, and ``logs`` for
``call_logs``), which bring SigV4 signing, retries and response parsing, and prove the
server speaks the protocols boto3 expects. Credentials come from the standard AWS chain
(environment, profiles, ...); with none configured, requests go unsigned, for a server
run with ``--no-auth``.

Three adjustments make the remote session behave exactly like the embedded one:

* errors come back as the package's own exceptions: the server names the class (and the
  offending field) in response headers; other codes become ``BatchTransformError`` with
  the server's code;
* timestamps are parsed into UTC datetimes, as the embedded service returns them;
* DescribeTransformJob keeps its ``Progress`` member, which botocore drops because the
  SageMaker model lacks it: a handler copies it from the raw body into the parsed response;
* ResumeTransformJob, ours, is not in botocore's model: it goes out as StopTransformJob,
  whose request has the same one member, with its target renamed before it is signed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import botocore.session
from botocore import UNSIGNED, xform_name
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from botocore.utils import parse_timestamp

from batchtransform import config
from batchtransform.api.protocol import ERROR_CLASS_HEADER, ERROR_FIELD_HEADER
from batchtransform.errors import (
    BatchTransformError,
    ConflictError,
    InvalidLogParameterError,
    LogResourceNotFoundError,
    NotBuiltError,
    NotFoundError,
    ValidationError,
)
from batchtransform.service import LOGS_OPERATIONS, OPERATIONS

__all__ = ["RemoteService"]

_PROGRESS_EVENT = "after-call.sagemaker.DescribeTransformJob"
_RESUME = "ResumeTransformJob"
_CARRIER = "StopTransformJob"  # the botocore operation a resume request travels as
_BY_NAME: dict[str, type[BatchTransformError]] = {
    "NotFoundError": NotFoundError,
    "LogResourceNotFoundError": LogResourceNotFoundError,
    "NotBuiltError": NotBuiltError,
}


class RemoteService:
    """Runs operations on a batchtransform server at ``endpoint_url``; same ``call`` as
    ``Service``, same responses, same exceptions."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.client = _client(endpoint_url)
        self._logs_client: BaseClient | None = None
        self._resume_client: BaseClient | None = None

    def call(self, operation: str, request: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run ``operation`` (``CreateTransformJob``, ...) on the server."""
        if operation not in OPERATIONS:
            raise ValidationError(
                f"Unknown operation {operation!r}; supported: {', '.join(OPERATIONS)}."
            )
        if operation == _RESUME:
            return _call(self._resumer(), _CARRIER, request)
        return _call(self.client, operation, request)

    def _resumer(self) -> BaseClient:
        """A client whose StopTransformJob requests are ResumeTransformJob requests."""
        if self._resume_client is None:
            self._resume_client = _client(self.endpoint_url)
            events = self._resume_client.meta.events
            events.register(f"before-sign.sagemaker.{_CARRIER}", _as_resume)
            events.register(f"after-call.sagemaker.{_CARRIER}", _keep_resume_answer)
        return self._resume_client

    def call_logs(self, operation: str, request: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a CloudWatch Logs read operation (``GetLogEvents``, ...) on the server."""
        if operation not in LOGS_OPERATIONS:
            raise InvalidLogParameterError(
                f"Unknown operation {operation!r}; supported: {', '.join(LOGS_OPERATIONS)}."
            )
        if self._logs_client is None:  # made when first needed: most sessions never read logs
            self._logs_client = _client(self.endpoint_url, "logs")
        return _call(self._logs_client, operation, request)


def _call(client: BaseClient, operation: str, request: Mapping[str, Any] | None) -> dict[str, Any]:
    """One operation through a botocore client, its errors as the package's exceptions."""
    method = getattr(client, xform_name(operation))
    try:
        response: dict[str, Any] = method(**dict(request or {}))
    except ClientError as exc:
        raise _exception(exc.response) from exc
    except ParamValidationError as exc:
        raise ValidationError(str(exc)) from exc
    except BotoCoreError as exc:
        error = BatchTransformError(str(exc))
        error.code = type(exc).__name__
        raise error from exc
    response.pop("ResponseMetadata", None)
    return response


def _client(endpoint_url: str, service: str = "sagemaker") -> BaseClient:
    session = botocore.session.get_session()
    parsers = session.get_component("response_parser_factory")
    parsers.set_parser_defaults(timestamp_parser=_utc_timestamp)
    signing = {} if session.get_credentials() is not None else {"signature_version": UNSIGNED}
    client = session.create_client(
        service,
        endpoint_url=endpoint_url,
        region_name=config.region(),
        config=Config(retries={"mode": "standard"}, **signing),
    )
    client.meta.events.register(_PROGRESS_EVENT, _keep_progress)
    return client


def _utc_timestamp(value: Any) -> dt.datetime:
    return parse_timestamp(value).astimezone(dt.timezone.utc)


def _keep_progress(http_response: AWSResponse, parsed: dict[str, Any], **_: Any) -> None:
    """Copy DescribeTransformJob's ``Progress`` from the raw body, where botocore left it."""
    if http_response.status_code != 200 or b'"Progress"' not in http_response.content:
        return
    progress = json.loads(http_response.content).get("Progress")
    if progress is not None:
        parsed["Progress"] = progress


def _as_resume(request: AWSRequest, **_: Any) -> None:
    """Rename the operation before the signature covers the header."""
    del request.headers["X-Amz-Target"]
    request.headers["X-Amz-Target"] = f"SageMaker.{_RESUME}"


def _keep_resume_answer(http_response: AWSResponse, parsed: dict[str, Any], **_: Any) -> None:
    """The answer's members, which StopTransformJob's empty output shape would drop."""
    if http_response.status_code == 200 and http_response.content:
        parsed.update(json.loads(http_response.content))


def _exception(response: Mapping[str, Any]) -> BatchTransformError:
    """The package exception the server raised, rebuilt from botocore's error response."""
    error, metadata = response.get("Error", {}), response.get("ResponseMetadata", {})
    code, message = error.get("Code") or "InternalFailure", error.get("Message") or ""
    headers = metadata.get("HTTPHeaders", {})
    kind = headers.get(ERROR_CLASS_HEADER.lower())
    if kind == "ValidationError":
        return ValidationError(message, headers.get(ERROR_FIELD_HEADER.lower()))
    if kind == "InvalidLogParameterError":
        return InvalidLogParameterError(message, headers.get(ERROR_FIELD_HEADER.lower()))
    if kind in _BY_NAME:
        return _BY_NAME[kind](message)
    if kind == "ConflictError":
        return ConflictError(message, code=code)
    other = BatchTransformError(message)
    other.code, other.status = code, metadata.get("HTTPStatusCode", other.status)
    return other
