"""The client side of the SageMaker container contract over HTTP (§7.2), for every runtime
whose model is a server: ``GET /ping``, ``GET /execution-parameters`` and
``POST /invocations``.

One ``ModelServerClient`` per running server holds one ``httpx.Client``: its connections
are kept alive and pooled, so concurrent invocations reuse open sockets instead of paying a
TCP handshake per mini-batch. The pool is not capped (the instance never runs more requests
at once than MaxConcurrentTransforms) and keeps up to ``KEEPALIVE_CONNECTIONS`` idle sockets.

Requests carry exactly the headers the contract names: ``Content-Type`` and ``Accept`` when
the job sets them and not otherwise (no ``Accept: */*`` default), and no compression.
"""

from __future__ import annotations

import http
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from batchtransform.errors import ModelError
from batchtransform.runtimes.base import ExecutionParameters

__all__ = [
    "BODY_START_CHARS",
    "PING_TIMEOUT",
    "ModelServerClient",
    "body_start",
    "parse_execution_parameters",
]

PING_TIMEOUT = 2.0  # per /ping attempt, as SageMaker's health check
EXECUTION_PARAMETERS_TIMEOUT = 10.0
KEEPALIVE_CONNECTIONS = 128
BODY_START_CHARS = 500
# Pings start 10 ms apart and back off to 100 ms: a server that is up in a second is seen
# within a few ms of it, and a slow one is not polled more than ten times a second.
_PING_FIRST_INTERVAL = 0.01
_PING_MAX_INTERVAL = 0.1
_STRATEGIES = {"multirecord": "MultiRecord", "singlerecord": "SingleRecord"}
_INTEGER_FIELDS = {
    "MaxConcurrentTransforms": "max_concurrent_transforms",
    "MaxPayloadInMB": "max_payload_in_mb",
}


class ModelServerClient:
    """Talks to one model server at ``base_url``; safe to use from many threads at once.

    ``invocation_timeout`` bounds a whole invocation, from connecting to the last byte of
    the response. ``transport`` is for tests that answer without a server.
    """

    def __init__(
        self,
        base_url: str,
        invocation_timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.invocation_timeout = invocation_timeout
        self._client = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(invocation_timeout),
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=KEEPALIVE_CONNECTIONS
            ),
            headers={"User-Agent": "batchtransform", "Accept-Encoding": "identity"},
            trust_env=False,  # a proxy from the environment must never see loopback traffic
            transport=transport,
        )
        del self._client.headers["Accept"]

    def ping(self) -> str | None:
        """None when ``GET /ping`` answers 200, else what it answered or why it did not."""
        try:
            response = self._client.get("/ping", timeout=PING_TIMEOUT)
        except httpx.HTTPError as exc:
            return _describe(exc)
        if response.status_code == 200:
            return None
        return f"{response.status_code} {_phrase(response)}"

    def wait_until_healthy(self, timeout: float, running: Callable[[], bool]) -> str | None:
        """Poll ``/ping`` until it answers 200, for at most ``timeout`` seconds.

        Returns None once healthy; otherwise the last answer (or error) seen, when the time
        ran out or ``running()`` said the server is gone.
        """
        deadline = time.monotonic() + timeout
        problem: str | None = "no answer yet"
        interval = _PING_FIRST_INTERVAL
        while running():
            problem = self.ping()
            if problem is None or time.monotonic() >= deadline:
                return problem
            time.sleep(interval)
            interval = min(interval * 1.5, _PING_MAX_INTERVAL)
        return problem

    def execution_parameters(self) -> ExecutionParameters | None:
        """``GET /execution-parameters``; None when the server does not provide them.

        Raises ValueError when it answers 200 with something that is not valid parameters,
        so that the caller can say so; any other answer means "not provided" (§4.1).
        """
        try:
            response = self._client.get(
                "/execution-parameters", timeout=EXECUTION_PARAMETERS_TIMEOUT
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return parse_execution_parameters(response.content)

    def invoke(
        self, payload: bytes, content_type: str | None, accept: str | None
    ) -> tuple[bytes, str | None]:
        """``POST /invocations``: the response body and its Content-Type.

        Raises ModelError: with the status and the start of the body for a non-2xx answer,
        and with no status (so that it is retried) when no answer came in time.
        """
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        deadline = time.monotonic() + self.invocation_timeout
        try:
            with self._client.stream(
                "POST", "/invocations", content=payload, headers=headers
            ) as response:
                body = b"".join(_chunks_until(response, deadline))
        except (httpx.TimeoutException, _DeadlinePassed) as exc:
            raise self._timeout_error() from exc
        except httpx.HTTPError as exc:
            raise ModelError(f"Unable to get response from the model: {_describe(exc)}") from exc
        if not 200 <= response.status_code < 300:
            raise _status_error(response.status_code, _phrase(response), body)
        return body, response.headers.get("Content-Type")

    def close(self) -> None:
        """Close the pooled connections; safe to call more than once."""
        self._client.close()

    def _timeout_error(self) -> ModelError:
        return ModelError(
            "Unable to get response from the model: no complete response within "
            f"{self.invocation_timeout:g} s (ModelClientConfig.InvocationsTimeoutInSeconds)"
        )


class _DeadlinePassed(Exception):
    """The response kept coming, but too slowly to finish within the invocation timeout."""


def _chunks_until(response: httpx.Response, deadline: float) -> Iterator[bytes]:
    """The body's chunks; each read has the client's timeout, and the whole has ``deadline``."""
    for chunk in response.iter_bytes():
        if time.monotonic() > deadline:
            raise _DeadlinePassed
        yield chunk


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _phrase(response: httpx.Response) -> str:
    try:
        return http.HTTPStatus(response.status_code).phrase
    except ValueError:
        return response.reason_phrase


def _status_error(status: int, phrase: str, body: bytes) -> ModelError:
    """``ModelError: 400 Bad Request from the model: <start of its body>``.

    SageMaker's data-log only says ``ClientError: 400``; the body is what tells the user why.
    """
    start = body_start(body)
    said = f": {start}" if start else " (empty body)"
    return ModelError(
        f"ModelError: {status} {phrase} from the model{said}", status=status, body=start
    )


def body_start(body: bytes) -> str:
    """The first ``BODY_START_CHARS`` characters of a body, on one line (a data-log line and a
    FailureReason must stay readable), marked with "..." when cut."""
    text = " ".join(body.decode("utf-8", "replace").split())
    if len(text) > BODY_START_CHARS:
        return text[:BODY_START_CHARS] + "..."
    return text


def parse_execution_parameters(body: bytes) -> ExecutionParameters:
    """A ``/execution-parameters`` answer, accepting both BatchStrategy spellings
    (``MULTI_RECORD`` as containers write it, ``MultiRecord`` as the API does) in any case.

    Raises ValueError for anything but a JSON object of the three known keys with valid
    values; unknown keys are ignored.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ValueError(f"a JSON {type(document).__name__}, not an object")
    values: dict[str, Any] = {}
    for key, attribute in _INTEGER_FIELDS.items():
        if document.get(key) is not None:
            values[attribute] = _non_negative_int(key, document[key])
    if document.get("BatchStrategy") is not None:
        values["batch_strategy"] = _strategy(document["BatchStrategy"])
    return ExecutionParameters(**values)


def _non_negative_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, not {value!r}")
    return value


def _strategy(value: Any) -> str:
    key = value.replace("_", "").lower() if isinstance(value, str) else ""
    if key not in _STRATEGIES:
        raise ValueError(f"BatchStrategy must be MULTI_RECORD or SINGLE_RECORD, not {value!r}")
    return _STRATEGIES[key]
