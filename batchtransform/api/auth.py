"""SigV4 verification of incoming requests, with botocore's own signer.

Rather than re-implement the canonical request, the verifier rebuilds the request the
client signed (method, path, the headers it lists as signed, the body) as a botocore
``AWSRequest`` and lets ``SigV4Auth`` compute the signature for the credential scope in
the ``Authorization`` header, with the client's ``X-Amz-Date``. Any region is accepted;
the service must be the signing name of the API the request is for: ``sagemaker`` (the
SageMaker API and the runtime API) or ``logs`` (CloudWatch Logs), with the same
credentials. Signatures are compared in constant time.

Refusals use the codes AWS JSON 1.x services send, as public reports show them for
Cognito, Rekognition, ECS and Kinesis (400s), and AWS's common-errors pages for the missing
token (403); which exact ones SageMaker sends is unconfirmed (reference §1.1):

=====================================  ======  ==========================================
code                                   status  when
=====================================  ======  ==========================================
MissingAuthenticationTokenException    403     no ``Authorization`` header at all
IncompleteSignatureException           400     a header that is not a complete SigV4
                                               authorization, no ``X-Amz-Date``, or
                                               ``host``/``x-amz-date`` left unsigned
UnrecognizedClientException            400     an access key id the server does not know
InvalidSignatureException              400     a wrong signature (wrong secret, tampered
                                               body or header), a scope for another
                                               service or day, a date more than 15
                                               minutes off, a mismatched content hash
=====================================  ======  ==========================================

Headers that botocore never signs (``User-Agent``, ``Expect``, ...) cannot be verified
here; a client that signs them is refused with InvalidSignatureException.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from batchtransform.api.protocol import ApiError, Request

__all__ = ["LOGS_SIGNING_NAME", "MAX_CLOCK_SKEW", "SIGNING_NAME", "Verifier", "matching_key"]

SIGNING_NAME = "sagemaker"
LOGS_SIGNING_NAME = "logs"
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
_ALGORITHM = "AWS4-HMAC-SHA256"
_REQUIRED_SIGNED = ("host", "x-amz-date")


@dataclass(frozen=True)
class _Authorization:
    """The parts of ``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...``."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def matching_key(credentials: Mapping[str, str], key_id: bytes, secret: bytes) -> str | None:
    """The access key id whose pair ``key_id`` and ``secret`` are, for a pair sent as it
    is (a sign-in form, HTTP Basic) rather than signed: every pair is compared, each half
    in constant time and with ``&`` rather than ``and``, so the time taken tells neither
    which key ids exist nor which half was wrong."""
    matched = None
    for key, known in credentials.items():
        if hmac.compare_digest(key.encode(), key_id) & hmac.compare_digest(known.encode(), secret):
            matched = key
    return matched


class Verifier:
    """Checks SigV4 signatures against a set of access key ids and their secrets."""

    def __init__(self, credentials: Mapping[str, str]) -> None:
        if not credentials:
            raise ValueError("a Verifier needs at least one access key id and secret")
        self._secrets = dict(credentials)

    def verify(self, request: Request, service: str = SIGNING_NAME) -> None:
        """Return if ``request`` is signed by a known key for ``service`` (the signing name
        of the API it is for); raise ApiError otherwise."""
        authorization = _parse(request.headers.get("Authorization"))
        secret = self._secrets.get(authorization.access_key_id)
        if secret is None:
            raise _unrecognized()
        timestamp = _timestamp(request)
        _check_scope(authorization, timestamp, service)
        _check_content_hash(request)
        expected = _signature(request, authorization, timestamp, secret)
        if not hmac.compare_digest(expected, authorization.signature):
            raise _invalid(
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method."
            )


def _parse(header: str | None) -> _Authorization:
    if not header:
        raise ApiError("MissingAuthenticationTokenException", 403, "Missing Authentication Token")
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != _ALGORITHM:
        raise _incomplete(f"Unsupported Authorization algorithm {algorithm!r}; use {_ALGORITHM}.")
    parts = _key_values(rest)
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not parts.get(name)]
    if missing:
        raise _incomplete(f"Authorization header requires {', '.join(missing)}.")
    scope = parts["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise _incomplete(
            "Credential must be <access key id>/<date>/<region>/<service>/aws4_request."
        )
    signed = tuple(parts["SignedHeaders"].lower().split(";"))
    unsigned = [name for name in _REQUIRED_SIGNED if name not in signed]
    if unsigned:
        raise _incomplete(f"SignedHeaders must include {', '.join(unsigned)}.")
    key, date, region, service = scope[:4]
    return _Authorization(key, date, region, service, signed, parts["Signature"])


def _key_values(text: str) -> dict[str, str]:
    """``Credential=a, SignedHeaders=b, Signature=c`` as a dict."""
    pairs = (item.strip().partition("=") for item in text.split(","))
    return {key: value for key, _, value in pairs}


def _timestamp(request: Request) -> str:
    """The client's ``X-Amz-Date``, checked to be within 15 minutes of the server's clock."""
    value = request.headers.get("X-Amz-Date")
    if not value:
        raise _incomplete("Authorization requires an X-Amz-Date header.")
    try:
        signed_at = dt.datetime.strptime(value, SIGV4_TIMESTAMP).replace(tzinfo=dt.timezone.utc)
    except ValueError as exc:
        raise _incomplete(f"X-Amz-Date {value!r} is not in the form 20240101T000000Z.") from exc
    now = dt.datetime.now(dt.timezone.utc)
    if signed_at < now - MAX_CLOCK_SKEW:
        raise _invalid(f"Signature expired: {value} is now earlier than {_stamp(now)} - 15 min.")
    if signed_at > now + MAX_CLOCK_SKEW:
        raise _invalid(f"Signature not yet current: {value} is later than {_stamp(now)} + 15 min.")
    return value


def _check_scope(authorization: _Authorization, timestamp: str, service: str) -> None:
    if authorization.service != service:
        raise _invalid(f"Credential should be scoped to correct service: '{service}'.")
    if authorization.date != timestamp[:8]:
        raise _invalid(
            f"Date in Credential scope ({authorization.date}) does not match the date of "
            f"X-Amz-Date ({timestamp[:8]})."
        )


def _check_content_hash(request: Request) -> None:
    """botocore signs ``X-Amz-Content-SHA256`` in place of hashing the body when present,
    so a body that does not match it would otherwise pass unnoticed."""
    claimed = request.headers.get("X-Amz-Content-SHA256")
    if claimed is not None and claimed != hashlib.sha256(request.body).hexdigest():
        raise _invalid("The X-Amz-Content-SHA256 header does not match the body.")


def _signature(request: Request, authorization: _Authorization, timestamp: str, secret: str) -> str:
    """What the client should have signed, computed by botocore for its scope and date."""
    signed = AWSRequest(
        method=request.method,
        url=f"http://{request.headers.get('Host', '')}{request.target}",
        data=request.body,
    )
    for name in authorization.signed_headers:
        for value in request.headers.get_all(name) or []:
            signed.headers[name] = value
    signed.context["timestamp"] = timestamp
    signer = SigV4Auth(
        Credentials(authorization.access_key_id, secret),
        authorization.service,
        authorization.region,
    )
    canonical = signer.canonical_request(signed)
    return signer.signature(signer.string_to_sign(signed, canonical), signed)


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime(SIGV4_TIMESTAMP)


def _incomplete(message: str) -> ApiError:
    return ApiError("IncompleteSignatureException", 400, message)


def _invalid(message: str) -> ApiError:
    return ApiError("InvalidSignatureException", 400, message)


def _unrecognized() -> ApiError:
    return ApiError(
        "UnrecognizedClientException", 400, "The security token included in the request is invalid."
    )
