"""HTTP pieces of the dashboard: its security headers, cookies, forms and redirects.

Every dashboard response carries a Content-Security-Policy that allows scripts, styles,
images and fetches from the server itself only (no inline script, so an injected
``<script>`` would not run even if escaping failed), refuses framing, and is not cached.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote

from batchtransform.api.protocol import Request, Response
from batchtransform.api.ui.sessions import COOKIE_NAME, SESSION_SECONDS

__all__ = [
    "COOKIE_PATH",
    "cookie_of",
    "expired_cookie",
    "form_of",
    "html_response",
    "json_view",
    "login_location",
    "query_of",
    "redirect",
    "safe_next",
    "session_cookie",
    "static_response",
]

COOKIE_PATH = "/ui"
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def html_response(
    body: str, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        status,
        body.encode(),
        {"Content-Type": "text/html; charset=utf-8", **_HEADERS, **(headers or {})},
    )


def json_view(document: Any, status: int = 200) -> Response:
    return Response(
        status, json.dumps(document).encode(), {"Content-Type": "application/json", **_HEADERS}
    )


def static_response(body: bytes, content_type: str) -> Response:
    """A vendored file: revalidated rather than stored, as it changes with the package."""
    headers = {**_HEADERS, "Content-Type": content_type, "Cache-Control": "no-cache"}
    return Response(200, body, headers)


def redirect(location: str, headers: Mapping[str, str] | None = None) -> Response:
    """303 See Other: the browser follows with a GET, also after a POST."""
    return Response(303, b"", {**_HEADERS, "Location": location, **(headers or {})})


def session_cookie(value: str) -> str:
    return (
        f"{COOKIE_NAME}={value}; Path={COOKIE_PATH}; Max-Age={SESSION_SECONDS}; "
        "HttpOnly; SameSite=Strict"
    )


def expired_cookie() -> str:
    return f"{COOKIE_NAME}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict"


def cookie_of(request: Request) -> str | None:
    """The session cookie's value; a malformed Cookie header counts as none."""
    header = request.headers.get("Cookie")
    if not header:
        return None
    try:
        jar = SimpleCookie(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE_NAME)
    return morsel.value if morsel else None


def form_of(request: Request) -> dict[str, str]:
    """An url-encoded form body, one value a field (the first); anything else is empty."""
    try:
        text = request.body.decode()
    except UnicodeDecodeError:
        return {}
    return {key: values[0] for key, values in parse_qs(text).items()}


def query_of(request: Request) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(request.query).items()}


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path only, never another site."""
    if target and target.startswith(f"{COOKIE_PATH}/") and not target.startswith("//"):
        return target
    return f"{COOKIE_PATH}/"


def login_location(request: Request) -> str:
    return f"{COOKIE_PATH}/login?next={quote(request.target, safe='')}"
