"""Dashboard sign-in: credentials checked in constant time, signed session cookies, CSRF.

A session is a cookie whose value is ``<payload>.<signature>``: the payload (base64url
JSON) carries its own expiry and the session's CSRF token, the signature is HMAC-SHA256
under a key drawn at random when the server starts. Nothing is kept on the server, so a
restart signs everyone out, and a cookie that does not verify (forged, tampered with,
expired, or from another server) is simply no session.

The CSRF token lives inside the signed cookie, which scripts cannot read (HttpOnly); pages
repeat it in a hidden form field and a ``<meta>`` tag, and a POST must send it back (form
field ``csrf`` or header ``X-CSRF-Token``). A cross-site page can make the browser send the
cookie (SameSite=Strict already stops that in current browsers) but cannot learn the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from batchtransform.api.auth import matching_key

__all__ = ["COOKIE_NAME", "SESSION_SECONDS", "Session", "SessionKeeper"]

COOKIE_NAME = "batchtransform_session"
SESSION_SECONDS = 12 * 3600
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who (the access key id, or "" without authentication), until
    when (epoch seconds), and the token its POSTs must carry."""

    principal: str
    expires: float
    csrf: str


class SessionKeeper:
    """Issues and checks session cookies, sign-ins and one-time sign-in tokens.

    ``credentials`` maps access key ids to secrets, as the API's; empty means the
    dashboard is open (``--no-auth``) and every browser gets an anonymous session, so
    POSTs still carry a CSRF token.
    """

    def __init__(self, credentials: Mapping[str, str]) -> None:
        self._credentials = dict(credentials)
        self._key = secrets.token_bytes(32)
        self._login_tokens: set[str] = set()
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        """Whether pages need no sign-in (the server runs without authentication)."""
        return not self._credentials

    def sign_in(self, access_key_id: str, secret_access_key: str) -> Session | None:
        """A new session for a matching pair (``auth.matching_key``), else None."""
        matched = matching_key(
            self._credentials, access_key_id.encode(), secret_access_key.encode()
        )
        return self.new_session(matched) if matched else None

    def new_session(self, principal: str = "") -> Session:
        expires = time.time() + SESSION_SECONDS
        return Session(principal, expires, secrets.token_urlsafe(24))

    def issue_login_token(self) -> str:
        """A token that signs one browser in once (``/ui/login?token=...``), as the sign-in
        URL that ``batchtransform ui`` prints."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._login_tokens.add(token)
        return token

    def redeem_login_token(self, token: str) -> Session | None:
        """A session for a token issued and not yet used; the token is used up."""
        with self._lock:
            found = next(
                (t for t in self._login_tokens if hmac.compare_digest(t.encode(), token.encode())),
                None,
            )
            if found is None:
                return None
            self._login_tokens.discard(found)
        return self.new_session(next(iter(self._credentials), ""))

    def cookie_value(self, session: Session) -> str:
        payload = json.dumps(
            {"p": session.principal, "e": session.expires, "c": session.csrf},
            separators=(",", ":"),
        ).encode()
        encoded = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{encoded}.{self._sign(encoded)}"

    def session_of(self, cookie_value: str | None) -> Session | None:
        """The session a cookie carries, or None when absent, unsigned or expired."""
        if not cookie_value or "." not in cookie_value:
            return None
        encoded, signature = cookie_value.rsplit(".", 1)
        if not hmac.compare_digest(self._sign(encoded), signature):
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
            session = Session(str(fields["p"]), float(fields["e"]), str(fields["c"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if session.expires <= time.time():
            return None
        if session.principal and session.principal not in self._credentials:
            return None
        return session

    @staticmethod
    def csrf_matches(session: Session, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(session.csrf.encode(), (sent or "").encode())

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
