"""SigV4 on the server: signed requests pass; unsigned, wrongly signed, tampered and stale
ones are refused with the codes AWS sends. Running without authentication is explicit."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore import UNSIGNED
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from documents import model_request

from batchtransform import BatchTransformError, Session, cli

JSON_11 = "application/x-amz-json-1.1"
LIST_MODELS = {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": JSON_11}


def hand_signed(
    server: Any,
    body: bytes,
    *,
    at: dt.datetime | None = None,
    path: str = "/",
    extra: dict[str, str] | None = None,
    service: str = "sagemaker",
) -> dict[str, str]:
    """Headers of a request signed as botocore signs, but at a chosen time (and scope)."""
    stamp = (at or dt.datetime.now(dt.timezone.utc)).strftime(SIGV4_TIMESTAMP)
    headers = {**LIST_MODELS, **(extra or {}), "X-Amz-Date": stamp}
    request = AWSRequest("POST", server.endpoint_url + path, headers=headers, data=body)
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(server.access_key, server.secret_key), service, "us-east-1")
    signature = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    signed_headers = signer.signed_headers(signer.headers_to_sign(request))
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={server.access_key}/{stamp[:8]}/us-east-1/{service}/"
        f"aws4_request, SignedHeaders={signed_headers}, Signature={signature}"
    )
    return headers


def refusal(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()
    return response.status_code, error["__type"], error["message"]


def client_refusal(call: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


# --- boto3 ---------------------------------------------------------------------------


def test_signed_requests_pass(api_server: Any) -> None:
    client = api_server.client()
    client.create_model(**model_request("m1"))
    assert [m["ModelName"] for m in client.list_models()["Models"]] == ["m1"]


def test_unsigned_requests_are_refused(api_server: Any) -> None:
    client = api_server.client(signed=False)
    assert client_refusal(client.list_models) == (
        403,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )


def test_an_unknown_access_key_is_refused(api_server: Any) -> None:
    client = api_server.client(access_key="AKIDNOBODYKNOWS")
    status, code, message = client_refusal(client.list_models)
    assert (status, code) == (400, "UnrecognizedClientException")
    assert message == "The security token included in the request is invalid."


def test_a_wrong_secret_is_refused(api_server: Any) -> None:
    client = api_server.client(secret_key="not-the-secret")
    status, code, message = client_refusal(client.list_models)
    assert (status, code) == (400, "InvalidSignatureException")
    assert "signature we calculated does not match" in message


def test_a_body_changed_after_signing_is_refused(api_server: Any) -> None:
    client = api_server.client()

    def tamper(request: Any, **_: Any) -> None:
        request.body = request.body.replace(b'"m1"', b'"m2"')  # same length, new meaning

    client.meta.events.register("before-send.sagemaker.CreateModel", tamper)
    status, code, _ = client_refusal(lambda: client.create_model(**model_request("m1")))
    assert (status, code) == (400, "InvalidSignatureException")
    assert api_server.client().list_models()["Models"] == [], "nothing was created"


# --- hand-made requests ----------------------------------------------------------------


def test_a_hand_signed_request_passes(api_server: Any) -> None:
    response = httpx.post(
        api_server.endpoint_url, headers=hand_signed(api_server, b"{}"), content=b"{}"
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"Models": []}


def test_signed_headers_with_another_body_are_refused(api_server: Any) -> None:
    headers = hand_signed(api_server, b'{"MaxResults": 5}')
    response = httpx.post(api_server.endpoint_url, headers=headers, content=b'{"MaxResults": 6}')
    assert refusal(response)[:2] == (400, "InvalidSignatureException")


def test_a_content_hash_header_must_match_the_body(api_server: Any) -> None:
    """botocore trusts X-Amz-Content-SHA256 in place of the body when signing."""
    claimed = {"X-Amz-Content-SHA256": hashlib.sha256(b"{}").hexdigest()}
    headers = hand_signed(api_server, b"{}", extra=claimed)
    assert httpx.post(api_server.endpoint_url, headers=headers, content=b"{}").status_code == 200
    response = httpx.post(api_server.endpoint_url, headers=headers, content=b'{"MaxResults": 1}')
    assert refusal(response)[:2] == (400, "InvalidSignatureException")
    assert "X-Amz-Content-SHA256" in refusal(response)[2]


@pytest.mark.parametrize(
    ("minutes", "status", "fragment"),
    [
        (-20, 400, "Signature expired"),
        (20, 400, "Signature not yet current"),
        (-10, 200, ""),
        (10, 200, ""),
    ],
)
def test_signatures_hold_for_15_minutes_either_way(
    api_server: Any, minutes: int, status: int, fragment: str
) -> None:
    at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)
    response = httpx.post(
        api_server.endpoint_url, headers=hand_signed(api_server, b"{}", at=at), content=b"{}"
    )
    assert response.status_code == status
    if fragment:
        assert refusal(response)[1] == "InvalidSignatureException"
        assert fragment in refusal(response)[2]


def test_a_scope_for_another_service_is_refused(api_server: Any) -> None:
    headers = hand_signed(api_server, b"{}", service="s3")
    response = httpx.post(api_server.endpoint_url, headers=headers, content=b"{}")
    assert refusal(response) == (
        400,
        "InvalidSignatureException",
        "Credential should be scoped to correct service: 'sagemaker'.",
    )


GOOD_SCOPE = "Credential=AKIDBATCHTRANSFORMTEST/20240101/us-east-1/sagemaker/aws4_request"

INCOMPLETE: list[tuple[str, str, str]] = [
    ("another scheme", "Bearer abc", "Unsupported Authorization algorithm"),
    ("no signature", f"AWS4-HMAC-SHA256 {GOOD_SCOPE}, SignedHeaders=host;x-amz-date", "Signature"),
    ("short scope", "AWS4-HMAC-SHA256 Credential=AKID/20240101/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab", "Credential must be"),
    ("host unsigned", f"AWS4-HMAC-SHA256 {GOOD_SCOPE}, SignedHeaders=x-amz-date, Signature=ab", "SignedHeaders must include host"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("authorization", "fragment"), [c[1:] for c in INCOMPLETE], ids=[c[0] for c in INCOMPLETE]
)
def test_incomplete_authorizations_are_refused(
    api_server: Any, authorization: str, fragment: str
) -> None:
    headers = {**LIST_MODELS, "Authorization": authorization, "X-Amz-Date": "20240101T000000Z"}
    status, code, message = refusal(
        httpx.post(api_server.endpoint_url, headers=headers, content=b"{}")
    )
    assert (status, code) == (400, "IncompleteSignatureException")
    assert fragment in message


def test_a_signature_without_its_date_header_is_refused(api_server: Any) -> None:
    headers = hand_signed(api_server, b"{}")
    del headers["X-Amz-Date"]
    response = httpx.post(api_server.endpoint_url, headers=headers, content=b"{}")
    assert refusal(response)[:2] == (400, "IncompleteSignatureException")


def test_authentication_comes_before_parsing(api_server: Any) -> None:
    response = httpx.post(api_server.endpoint_url, headers=LIST_MODELS, content=b"{not json")
    assert refusal(response)[:2] == (403, "MissingAuthenticationTokenException")


def test_health_checks_need_no_signature(api_server: Any) -> None:
    assert httpx.get(api_server.endpoint_url + "/ping").status_code == 200


def test_the_runtime_route_is_signed_too(api_server: Any) -> None:
    url = api_server.endpoint_url + "/endpoints/e1/invocations"
    assert refusal(httpx.post(url, content=b"1\n"))[1] == "MissingAuthenticationTokenException"
    headers = hand_signed(api_server, b"1\n", path="/endpoints/e1/invocations")
    assert refusal(httpx.post(url, headers=headers, content=b"1\n"))[:2] == (
        501,
        "NotImplementedException",
    )


# --- without authentication ------------------------------------------------------------


def test_without_authentication_anyone_may_call(open_server: Any) -> None:
    open_server.client(signed=False).create_model(**model_request("m1"))
    assert (
        len(open_server.client(access_key="ANYONE", secret_key="anything").list_models()["Models"])
        == 1
    )


def test_a_remote_session_without_credentials_goes_unsigned(
    open_server: Any, api_server: Any, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    Session(endpoint_url=open_server.endpoint_url).create_model(**model_request("m1"))
    with pytest.raises(BatchTransformError) as caught:
        Session(endpoint_url=api_server.endpoint_url).list_models()
    assert caught.value.code == "MissingAuthenticationTokenException"
    assert (
        Session(endpoint_url=open_server.endpoint_url).service.client.meta.config.signature_version
        is UNSIGNED
    )  # type: ignore[union-attr]


def test_a_remote_session_signs_with_the_standard_credentials(
    api_server: Any, aws_env: None
) -> None:
    Session(endpoint_url=api_server.endpoint_url).create_model(**model_request("m1"))
    assert api_server.client().list_models()["Models"][0]["ModelName"] == "m1"


# --- the server command ----------------------------------------------------------------

SERVER_VARIABLES = (
    "BATCHTRANSFORM_SERVER_ACCESS_KEY_ID",
    "BATCHTRANSFORM_SERVER_SECRET_ACCESS_KEY",
)

REFUSED: list[tuple[str, list[str], dict[str, str], str]] = [
    ("no credentials, no --no-auth", [], {}, "refusing to start without authentication"),
    ("a key id without its secret", ["--access-key-id", "AKID"], {}, "give both"),
    ("a secret from the environment alone", [], {SERVER_VARIABLES[1]: "s"}, "give both"),
    ("--no-auth with credentials", ["--no-auth"], {SERVER_VARIABLES[0]: "AKID", SERVER_VARIABLES[1]: "s"}, "conflicts"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "environment", "fragment"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_the_server_command_refuses_an_unclear_choice(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    environment: dict[str, str],
    fragment: str,
) -> None:
    for name in SERVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["server", "--port", "0", *options]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert fragment in err and "--no-auth" in err


def test_the_server_command_serves_signed_requests(aws_env: None, tmp_path: Path) -> None:
    environment = {
        **os.environ,
        SERVER_VARIABLES[0]: os.environ["AWS_ACCESS_KEY_ID"],
        SERVER_VARIABLES[1]: os.environ["AWS_SECRET_ACCESS_KEY"],
    }
    command = [str(Path(sys.executable).parent / "batchtransform"), "server", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            assert "SigV4 signatures required" in line, line
            url = line.split(" on ", 1)[1].split(" ", 1)[0]
            assert url.startswith("http://127.0.0.1:")
            session = Session(endpoint_url=url)
            session.create_model(**model_request("m1"))
            assert [m["ModelName"] for m in session.list_models()["Models"]] == ["m1"]
            assert refusal(httpx.post(url, headers=LIST_MODELS, content=b"{}"))[0] == 403
        finally:
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=30) == 130
