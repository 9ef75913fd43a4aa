"""Which store failures are outages, the retry loop that waits them out, and one-line
reasons. The end-to-end cases (a real S3 server stopped and started) are in tests/faults."""

from __future__ import annotations

import errno

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from batchtransform import outages
from batchtransform.errors import StorageError, one_line


def client_error(status: int, code: str) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")  # type: ignore[arg-type]


def translated(error: ClientError, number: int) -> OSError:
    """As s3fs raises S3's answers: an OSError caused by botocore's error."""
    raised = OSError(number, str(error))
    raised.__cause__ = error
    return raised


@pytest.mark.parametrize(
    ("failure", "transient"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), True),
        (TimeoutError("timed out"), True),
        (client_error(503, "SlowDown"), True),
        (client_error(500, "InternalError"), True),
        (translated(client_error(502, "BadGateway"), errno.EIO), True),
        (client_error(404, "NoSuchKey"), False),
        (client_error(403, "AccessDenied"), False),
        (translated(client_error(409, "BucketNotEmpty"), errno.EBUSY), False),
        (PermissionError(errno.EACCES, "denied"), False),
        (FileNotFoundError(errno.ENOENT, "no such bucket"), False),
    ],
)
def test_outages_are_told_from_refusals(failure: BaseException, transient: bool) -> None:
    assert outages.is_transient(failure) is transient


def test_an_outage_that_passes_is_waited_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(outages.RETRY_SECONDS_ENV, "30")
    answers: list[BaseException | str] = [ConnectionResetError(), TimeoutError(), "the object"]

    def operation() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert outages.call(operation, "read s3://b/k", "http://store-a") == "the object"
    assert answers == []


def test_a_spent_budget_fails_naming_the_object_and_the_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(outages.RETRY_SECONDS_ENV, "0")

    def operation() -> None:
        raise EndpointConnectionError(endpoint_url="http://store-b/b/k")

    with pytest.raises(StorageError) as raised:
        outages.call(operation, "read s3://b/k", "http://store-b")
    message = str(raised.value)
    assert message.startswith("cannot read s3://b/k: the store at http://store-b did not answer")
    assert "EndpointConnectionError" in message
    assert not raised.value.transient, "the waiting is over: no rerun"


def test_a_refusal_is_not_retried() -> None:
    calls = []

    def operation() -> None:
        calls.append(1)
        raise PermissionError(errno.EACCES, "denied")

    with pytest.raises(PermissionError):
        outages.call(operation, "read s3://b/k", "http://store-c")
    assert len(calls) == 1


def test_a_bad_budget_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(outages.RETRY_SECONDS_ENV, "a minute")
    with pytest.raises(StorageError, match=outages.RETRY_SECONDS_ENV):
        outages.retry_seconds()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a.csv: record 3: bad", "a.csv: record 3: bad"),
        (
            "model_fn failed: ValueError: boom\nTraceback (most recent call last):\n  File x\nValueError: boom",
            "model_fn failed: ValueError: boom",
        ),
        (
            "could not import inference.py:\nTraceback (most recent call last):\n  File x\nSyntaxError: bad",
            "could not import inference.py: SyntaxError: bad",
        ),
        ("Traceback (most recent call last):\n  File x\nKeyError: 'k'", "KeyError: 'k'"),
        (
            "server exited. Its last output:\n  line 1\n\n  line 2\n",
            "server exited. Its last output: line 1 line 2",
        ),
    ],
)
def test_reasons_are_one_line(text: str, line: str) -> None:
    assert one_line(text) == line


def test_a_long_reason_is_cut_to_the_api_limit() -> None:
    assert len(one_line("x" * 5000)) == 1024 and one_line("x" * 5000).endswith("...")
