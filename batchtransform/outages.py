"""Waiting out object-store outages: which failures pass with time, and the retry loop.

botocore and s3fs retry a failed request a few times (about 8-10 s in all against a
server that refuses connections), which a restarting S3-compatible server or a network
blip easily outlasts. Here every S3 request that fails with a lost connection, a timeout
or a 5xx is tried again with backoff for as long as the store has been failing, up to
``BATCHTRANSFORM_STORAGE_RETRY_SECONDS`` (60 s by default). The clock is per endpoint and
per process: it starts at the first failure and is reset by any success, so once a store
has been down for the whole budget every further request fails after its first attempt
instead of waiting the budget out again, and a permanent outage fails a job in bounded
time.

Only requests that can be repeated whole go through here (a ranged GET, one part of an
upload, a listing): a read cut off halfway goes on from its range, an upload from its
part. A failure that reaches the caller without this loop (a file-like read of a model
archive, say) is a ``StorageError`` marked ``transient``, and the worker runs its item
again from the start instead of resuming a half-consumed stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from batchtransform import config
from batchtransform.errors import StorageError

__all__ = ["DEFAULT_RETRY_SECONDS", "RETRY_SECONDS_ENV", "call", "is_transient", "retry_seconds"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

RETRY_SECONDS_ENV = "BATCHTRANSFORM_STORAGE_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 60.0
_BACKOFF_SECONDS = (0.25, 0.5, 1.0, 2.0, 4.0)
# S3's own codes for "try again": throttling and server-side trouble that a 5xx may not show.
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"}
)

_lock = threading.Lock()
_failing_since: dict[str, float] = {}  # endpoint -> monotonic time of its first failure


def retry_seconds() -> float:
    """The outage budget: BATCHTRANSFORM_STORAGE_RETRY_SECONDS, or 60 s; 0 turns it off."""
    try:
        return config.seconds(RETRY_SECONDS_ENV, DEFAULT_RETRY_SECONDS, zero_allowed=True)
    except ValueError as exc:
        raise StorageError(str(exc)) from None


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is an outage rather than a refusal.

    Lost or refused connections, timeouts and 5xx answers pass with time; a missing
    bucket, a denied request or a bad signature do not. s3fs turns S3's answers into
    OSErrors but keeps the botocore error as the cause, so the whole chain is searched.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transient_itself(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return int(status) >= 500 or code in _TRANSIENT_CODES or code.startswith("5")
    if isinstance(exc, (BotocoreConnectionError, HTTPClientError, ConnectionError, TimeoutError)):
        return True
    # aiohttp's connection errors and fsspec's timeout, without importing either here
    name = type(exc).__name__
    return name in {"FSTimeoutError", "ServerDisconnectedError"} or (
        name.startswith("Client") and "Connect" in name
    )


def call(
    operation: Callable[[], T],
    what: str,
    endpoint: str,
    cancelled: Callable[[], bool] = lambda: False,
) -> T:
    """``operation()``, tried again while it fails transiently and the outage is young.

    ``what`` says what was being done (``read s3://b/k``) and ``endpoint`` where, for the
    StorageError raised once the budget is spent (not marked transient: the waiting is
    over). Other failures propagate unchanged for the caller to translate. ``cancelled``
    ends the waiting early (an upload that is being abandoned).
    """
    for attempt in range(1_000_000):
        began = time.monotonic()
        try:
            result = operation()
        except Exception as exc:
            if not is_transient(exc):
                raise
            waited = _note_failure(endpoint, began)
            budget = retry_seconds()
            if waited >= budget or cancelled():
                raise StorageError(
                    f"cannot {what}: the store at {endpoint} did not answer "
                    f"(retried for {waited:.0f} s): {type(exc).__name__}: {exc}"
                ) from exc
            pause = _BACKOFF_SECONDS[min(attempt, len(_BACKOFF_SECONDS) - 1)]
            time.sleep(min(pause, max(0.0, budget - waited)))
        else:
            _note_success(endpoint)
            return result
    raise AssertionError("unreachable")


def _note_failure(endpoint: str, attempt_began: float) -> float:
    """Seconds the endpoint has been failing, from the start of its first failed attempt
    (botocore's own retries make one attempt last seconds). The start of an outage is
    logged (an instance's log, the controller's), so a slow job can be explained."""
    with _lock:
        new = endpoint not in _failing_since
        since = _failing_since.setdefault(endpoint, attempt_began)
    if new:
        logger.warning(
            "the store at %s is not answering; retrying for up to %.0f s", endpoint, retry_seconds()
        )
    return time.monotonic() - since


def _note_success(endpoint: str) -> None:
    if endpoint not in _failing_since:
        return
    with _lock:
        since = _failing_since.pop(endpoint, None)
    if since is not None:
        logger.warning(
            "the store at %s answers again, after %.0f s", endpoint, time.monotonic() - since
        )
