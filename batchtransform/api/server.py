"""The HTTP server: SageMaker's JSON 1.1 API over ``Service.call``, so boto3 works unchanged.

Routes (method, path → handler), with room for the runtime API of real-time endpoints:

==========================================  =============================================
``POST /``                                   the SageMaker API (``X-Amz-Target:
                                             SageMaker.*``, signed for ``sagemaker``) and
                                             the CloudWatch Logs API (``Logs_20140328.*``,
                                             signed for ``logs``; see ``api.logs``)
``GET /ping``                                health check: 200, never signed
``GET /metrics``                             Prometheus metrics (``api.metrics``): HTTP
                                             Basic with a key and its secret, or the
                                             metrics token
``POST /endpoints/{name}/invocations``       the runtime API: 501 until endpoints exist
``/ui/...``                                  the web dashboard (``api.ui``): a sign-in
                                             form with the same credentials
==========================================  =============================================

The server is thin: each operation is one ``Service.call`` and everything else is the
protocol (``protocol``) and signatures (``auth``). It runs on the standard library's
``ThreadingHTTPServer``, a thread per connection, which is plenty for a control plane
whose work happens in the jobs' own processes and adds no dependency. HTTP/1.1 keeps
botocore's pooled connections open; ``stop`` closes them so nothing outlives the server.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit

from batchtransform.api import protocol
from batchtransform.api.auth import SIGNING_NAME, Verifier
from batchtransform.api.logs import logs_api
from batchtransform.api.metrics import MetricsAccess, MetricsEndpoint
from batchtransform.api.protocol import ApiError, JsonApi, Request, Response
from batchtransform.api.ui import Dashboard
from batchtransform.errors import BatchTransformError
from batchtransform.service import OPERATIONS, Service

__all__ = [
    "ACCESS_KEY_ID_VARIABLE",
    "SECRET_ACCESS_KEY_VARIABLE",
    "ApiServer",
    "Router",
    "ServerConfig",
    "credentials_from",
]

ACCESS_KEY_ID_VARIABLE = "BATCHTRANSFORM_SERVER_ACCESS_KEY_ID"
SECRET_ACCESS_KEY_VARIABLE = "BATCHTRANSFORM_SERVER_SECRET_ACCESS_KEY"
MAX_BODY_BYTES = 16 * 1024 * 1024
IDLE_CONNECTION_SECONDS = 120
_SHUTDOWN_POLL_SECONDS = 0.1  # how soon serve_forever notices stop()

Handler = Callable[[Request, Mapping[str, str]], Response]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    """Where the server listens and whom it lets in.

    ``credentials`` maps access key ids to secrets; without any, ``no_auth`` must say so,
    because running unauthenticated is a choice to make explicitly. ``metrics_token`` is a
    bearer token that may read ``/metrics`` too (a Prometheus without the API's secrets).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    credentials: Mapping[str, str] = field(default_factory=dict)
    no_auth: bool = False
    metrics_token: str | None = None

    def verifier(self) -> Verifier | None:
        """The signature check, or None when ``no_auth``; refuses an unclear choice."""
        if self.credentials and self.no_auth:
            raise ValueError("no_auth conflicts with the credentials given; choose one.")
        if not self.credentials and not self.no_auth:
            raise ValueError(
                "refusing to start without authentication: give an access key id and secret "
                f"(or set {ACCESS_KEY_ID_VARIABLE} and {SECRET_ACCESS_KEY_VARIABLE}), "
                "or choose no authentication explicitly."
            )
        return Verifier(self.credentials) if self.credentials else None


def credentials_from(
    access_key_id: str | None,
    secret_access_key: str | None,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """The server's credentials from options, else from the environment; both or none."""
    key = access_key_id or environ.get(ACCESS_KEY_ID_VARIABLE)
    secret = secret_access_key or environ.get(SECRET_ACCESS_KEY_VARIABLE)
    if bool(key) != bool(secret):
        raise ValueError("give both an access key id and a secret access key, or neither.")
    return {key: secret} if key and secret else {}


class Router:
    """(method, path template) → handler; ``{name}`` in a template matches one segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        self._routes.append((method, re.compile(pattern), handler))

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and path parameters; 404 for an unknown path, 405 for a wrong method."""
        found = [(m, match, h) for m, p, h in self._routes if (match := p.fullmatch(path))]
        for route_method, match, handler in found:
            if route_method == method:
                return handler, match.groupdict()
        if found:
            raise ApiError("MethodNotAllowedException", 405, f"{method} is not allowed on {path}.")
        raise ApiError("NotFoundException", 404, f"No route for {method} {path}.")


class ApiServer:
    """The SageMaker and CloudWatch Logs APIs on one address, over one ``Service``.

    ``serve_forever()`` blocks (the ``batchtransform server`` command); ``start()`` serves
    from a background thread and ``stop()`` ends it (tests, embedding). A context manager
    does both.
    """

    def __init__(self, config: ServerConfig, service: Service | None = None) -> None:
        self.verifier = config.verifier()
        self.service = service or Service()
        self.apis = (
            JsonApi(protocol.TARGET_PREFIX, SIGNING_NAME, OPERATIONS, self.service.call),
            logs_api(self.service),
        )
        self.router = Router()
        self.router.add("POST", "/", self._api)
        self.router.add("GET", "/ping", self._ping)
        access = MetricsAccess(config.credentials, config.metrics_token)
        self.router.add("GET", "/metrics", MetricsEndpoint(self.service, access))
        self.router.add("POST", "/endpoints/{name}/invocations", self._invocations)
        self.dashboard = Dashboard(self.service, config.credentials)
        self.dashboard.install(self.router.add)
        self._httpd = _HTTPServer((config.host, config.port), self.dispatch)
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://host:port`` with the port actually bound (useful with port 0)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve_forever(self) -> None:
        try:
            self._httpd.serve_forever(_SHUTDOWN_POLL_SECONDS)
        finally:
            self._httpd.server_close()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            args=(_SHUTDOWN_POLL_SECONDS,),
            name="batchtransform-api",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (if started), then close open connections and the listening socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.close_connections()
        self._httpd.server_close()

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def dispatch(self, request: Request) -> Response:
        """One request to one response; no exception escapes."""
        try:
            handler, parameters = self.router.resolve(request.method, request.path)
            return handler(request, parameters)
        except ApiError as exc:
            return protocol.error_response(exc.code, exc.status, exc.message)
        except BatchTransformError as exc:
            return protocol.exception_response(exc)
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            return protocol.error_response(
                "InternalFailure", 500, "The server failed to process the request; see its log."
            )

    def _api(self, request: Request, _: Mapping[str, str]) -> Response:
        """One operation of the API its target names (SageMaker's when it names none)."""
        api = next((api for api in self.apis if api.serves(request)), self.apis[0])
        self._authenticate(request, api.signing_name)
        protocol.check_content_type(request)
        operation = protocol.operation_of(request, api.target_prefix)
        if operation not in api.operations:
            raise ApiError(
                "UnknownOperationException",
                400,
                f"Operation {operation} is not supported by this server; supported: "
                f"{', '.join(api.operations)}.",
            )
        document = protocol.decode_body(request.body)
        return protocol.json_response(api.call(operation, document))

    def _ping(self, _request: Request, _: Mapping[str, str]) -> Response:
        return protocol.json_response({})

    def _invocations(self, request: Request, parameters: Mapping[str, str]) -> Response:
        self._authenticate(request)
        raise ApiError(
            "NotImplementedException",
            501,
            f"Cannot invoke endpoint {parameters['name']!r}: real-time endpoints are not built "
            "yet; use a transform job.",
        )

    def _authenticate(self, request: Request, service: str = SIGNING_NAME) -> None:
        if self.verifier is not None:
            self.verifier.verify(request, service)


class _HTTPServer(ThreadingHTTPServer):
    """A thread per connection, a deep accept queue for bursts of clients, and a record of
    open connections so that ``stop`` can close idle keep-alive ones."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], dispatch: Callable[[Request], Response]) -> None:
        self.dispatch = dispatch
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._lock:
            for connection in self._connections:
                with suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class _RequestHandler(BaseHTTPRequestHandler):
    """Reads a request, hands it to the server's ``dispatch``, writes the response."""

    protocol_version = "HTTP/1.1"
    server_version = "batchtransform"
    sys_version = ""
    timeout = IDLE_CONNECTION_SECONDS

    def setup(self) -> None:
        super().setup()
        self._server().track(self.connection, open_=True)

    def finish(self) -> None:
        self._server().track(self.connection, open_=False)
        super().finish()

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        try:
            response = self._server().dispatch(self._read())
        except ApiError as exc:
            self.close_connection = True  # the unread body would garble the next request
            response = protocol.error_response(exc.code, exc.status, exc.message)
        self._write(response)

    def _read(self) -> Request:
        if self.headers.get("Transfer-Encoding"):
            raise ApiError("LengthRequiredException", 411, "Send a Content-Length, not chunks.")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise ApiError(
                "SerializationException", 400, "Content-Length is not a number."
            ) from exc
        if not 0 <= length <= MAX_BODY_BYTES:
            raise ApiError(
                "RequestEntityTooLargeException",
                413,
                f"Bodies are limited to {MAX_BODY_BYTES} bytes.",
            )
        parts = urlsplit(self.path)
        body = self.rfile.read(length)
        return Request(self.command, parts.path, parts.query, self.headers, body)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        headers = {**response.headers, "x-amzn-RequestId": str(uuid.uuid4())}
        headers["Content-Length"] = str(len(response.body))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def _server(self) -> _HTTPServer:
        return cast(_HTTPServer, self.server)

    def log_message(self, format: str, *args: object) -> None:
        """Requests go to logging (debug), not to stderr line by line."""
        logger.debug("%s " + format, self.address_string(), *args)
