"""``RemoteService``: the ``Service.call`` interface over HTTP, to a ``batchtransform server``.

The requests go out through a real botocore ``sagemaker`` client, which brings SigV4
signing, retries and response parsing, and proves the server speaks the protocol boto3
expects. Credentials come from the standard AWS chain (environment, profiles, ...); with
none configured, requests go unsigned, for a server run with ``--no-auth``.

Three adjustments make the remote session behave exactly like the embedded one:

* errors come back as the package's own exceptions: the server names the class (and the
  offending field) in response headers; other codes become ``BatchTransformError`` with
  the server's code;
* timestamps are parsed into UTC datetimes, as the embedded service returns them;
* DescribeTransformJob keeps its ``Progress`` member, which botocore drops because the
  SageMaker model lacks it: a handler copies it from the raw body into the parsed response.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import botocore.session
from botocore import UNSIGNED, xform_name
from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from botocore.utils import parse_timestamp

from batchtransform import config
from batchtransform.api.protocol import ERROR_CLASS_HEADER, ERROR_FIELD_HEADER
from batchtransform.errors import (
    BatchTransformError,
    ConflictError,
    NotBuiltError,
    NotFoundError,
    ValidationError,
)
from batchtransform.service import OPERATIONS

__all__ = ["RemoteService"]

_PROGRESS_EVENT = "after-call.sagemaker.DescribeTransformJob"


class RemoteService:
    """Runs operations on a batchtransform server at ``endpoint_url``; same ``call`` as
    ``Service``, same responses, same exceptions."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.client = _client(endpoint_url)

    def call(self, operation: str, request: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run ``operation`` (``CreateTransformJob``, ...) on the server."""
        if operation not in OPERATIONS:
            raise ValidationError(
                f"Unknown operation {operation!r}; supported: {', '.join(OPERATIONS)}."
            )
        method = getattr(self.client, xform_name(operation))
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


def _client(endpoint_url: str) -> BaseClient:
    session = botocore.session.get_session()
    parsers = session.get_component("response_parser_factory")
    parsers.set_parser_defaults(timestamp_parser=_utc_timestamp)
    signing = {} if session.get_credentials() is not None else {"signature_version": UNSIGNED}
    client = session.create_client(
        "sagemaker",
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


def _exception(response: Mapping[str, Any]) -> BatchTransformError:
    """The package exception the server raised, rebuilt from botocore's error response."""
    error, metadata = response.get("Error", {}), response.get("ResponseMetadata", {})
    code, message = error.get("Code") or "InternalFailure", error.get("Message") or ""
    headers = metadata.get("HTTPHeaders", {})
    kind = headers.get(ERROR_CLASS_HEADER.lower())
    if kind == "ValidationError":
        return ValidationError(message, headers.get(ERROR_FIELD_HEADER.lower()))
    if kind == "NotFoundError":
        return NotFoundError(message)
    if kind == "NotBuiltError":
        return NotBuiltError(message)
    if kind == "ConflictError":
        return ConflictError(message, code=code)
    other = BatchTransformError(message)
    other.code, other.status = code, metadata.get("HTTPStatusCode", other.status)
    return other
