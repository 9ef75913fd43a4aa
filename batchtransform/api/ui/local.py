"""``batchtransform ui``: the dashboard (and the API) for this machine's embedded service.

The server listens on 127.0.0.1 only, over the same ``$BATCHTRANSFORM_HOME`` as the
embedded service, and with a credential pair drawn at random for this run: other users of
the machine can reach the port, but not without the secret. The person who started it
signs in with a one-time URL (as Jupyter prints one), which sets the session cookie.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from batchtransform.api.server import ApiServer, ServerConfig

__all__ = ["LocalDashboard", "local_dashboard"]

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class LocalDashboard:
    """A server not yet serving, the URL that signs its first browser in, and the pair
    that API clients (boto3, ``--endpoint-url``) sign with."""

    server: ApiServer
    sign_in_url: str
    access_key_id: str
    secret_access_key: str


def local_dashboard(port: int = 0) -> LocalDashboard:
    """A server on ``127.0.0.1:port`` (0: a free port) with a fresh random credential."""
    access_key_id = "BTUI" + secrets.token_hex(8).upper()
    secret_access_key = secrets.token_urlsafe(30)
    server = ApiServer(ServerConfig(LOOPBACK, port, {access_key_id: secret_access_key}))
    token = server.dashboard.sessions.issue_login_token()
    url = f"{server.endpoint_url}/ui/login?token={token}"
    return LocalDashboard(server, url, access_key_id, secret_access_key)
