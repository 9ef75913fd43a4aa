"""The HTTP client side of the container contract, on answers made up by a mock transport."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from batchtransform.errors import ModelError
from batchtransform.runtimes.http import BODY_START_CHARS, ModelServerClient, body_start


def client(
    handler: Callable[[httpx.Request], httpx.Response], timeout: float = 5.0
) -> ModelServerClient:
    return ModelServerClient("http://127.0.0.1:9", timeout, transport=httpx.MockTransport(handler))


def test_requests_carry_only_the_contracts_headers() -> None:
    seen: list[httpx.Headers] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, content=b"ok", headers={"Content-Type": "text/csv"})

    model = client(answer)
    assert model.invoke(b"1", None, None) == (b"ok", "text/csv")
    assert model.invoke(b"1", "text/csv", "application/json") == (b"ok", "text/csv")
    assert "accept" not in seen[0] and "content-type" not in seen[0]
    assert (seen[1]["content-type"], seen[1]["accept"]) == ("text/csv", "application/json")
    assert seen[0]["accept-encoding"] == "identity"


BODIES = [
    ("short", b"bad input", "bad input"),
    ("whitespace on one line", b"Traceback:\n  File x\n\tValueError: no", "Traceback: File x ValueError: no"),
    ("long", b"x" * 2000, "x" * BODY_START_CHARS + "..."),
    ("not UTF-8", b"caf\xe9", "caf\ufffd"),
    ("empty", b"", ""),
]  # fmt: skip


@pytest.mark.parametrize(("body", "start"), [c[1:] for c in BODIES], ids=[c[0] for c in BODIES])
def test_the_start_of_a_body_is_quoted_on_one_line(body: bytes, start: str) -> None:
    assert body_start(body) == start


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (413, b"too big", "ModelError: 413 Request Entity Too Large from the model: too big"),
        (503, b"", "ModelError: 503 Service Unavailable from the model (empty body)"),
        (299, b"fine", None),
    ],
)
def test_a_non_2xx_answer_is_a_model_error_with_its_status(
    status: int, body: bytes, message: str | None
) -> None:
    model = client(lambda request: httpx.Response(status, content=body))
    if message is None:
        assert model.invoke(b"1", None, None) == (b"fine", None)
        return
    with pytest.raises(ModelError) as caught:
        model.invoke(b"1", None, None)
    assert (caught.value.message, caught.value.model_status) == (message, status)


def test_a_lost_connection_has_no_status() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(ModelError) as caught:
        client(refuse).invoke(b"1", None, None)
    assert caught.value.model_status is None
    assert (
        caught.value.message
        == "Unable to get response from the model: ConnectError: connection refused"
    )


def test_a_response_that_trickles_past_the_timeout_times_out() -> None:
    def trickle() -> Iterator[bytes]:
        for _ in range(10):
            time.sleep(0.1)
            yield b"x"

    with pytest.raises(ModelError, match=r"no complete response within 0.3 s") as caught:
        client(lambda request: httpx.Response(200, content=trickle()), timeout=0.3).invoke(
            b"1", None, None
        )
    assert caught.value.retryable


def test_execution_parameters_not_provided_on_errors() -> None:
    assert client(lambda request: httpx.Response(500, content=b"{}")).execution_parameters() is None
    with pytest.raises(ValueError, match="not an object"):
        client(lambda request: httpx.Response(200, content=b"[1]")).execution_parameters()
