"""Servers for the HTTP API tests: ``batchtransform server`` in this process, on a free
127.0.0.1 port, served from a background thread and stopped after each test.

``api_server`` checks SigV4 signatures against one test key; ``open_server`` runs with
authentication off. Both hand out real boto3 ``sagemaker`` clients pointed at them, and
close those clients before the server stops. ``aws_env`` puts the test key into AWS's
standard variables, for code that finds credentials itself (RemoteService, the CLI), and
``model_archive`` packs a test handler as a model.tar.gz.

Test modules cannot import from this file (see ``pytest_configure``), so what they need
travels on the fixtures: ``api_server.access_key`` and ``api_server.secret_key``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from models import tar_model, write_model

from batchtransform.api import ApiServer, ServerConfig

ACCESS_KEY = "AKIDBATCHTRANSFORMTEST"
SECRET_KEY = "batchtransform-test-secret"
REGION = "us-east-1"


@dataclass
class RunningServer:
    """A started ApiServer, the key it accepts, and the boto3 clients handed out for it
    (made from one boto3 session, which caches the service model: a new one takes 0.2 s)."""

    server: ApiServer
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    clients: list[Any] = field(default_factory=list)
    boto: boto3.session.Session = field(default_factory=boto3.session.Session)

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def client(
        self,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        signed: bool = True,
        **settings: Any,
    ) -> Any:
        """boto3's SageMaker client for this server, signing with the server's key unless
        told otherwise; ``signed=False`` sends no signature at all."""
        if not signed:
            settings["signature_version"] = UNSIGNED
        client = self.boto.client(
            "sagemaker",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(**settings),
        )
        self.clients.append(client)
        return client


def _serve(config: ServerConfig) -> Iterator[RunningServer]:
    with ApiServer(config) as server:
        running = RunningServer(server)
        try:
            yield running
        finally:
            for client in running.clients:
                client.close()


@pytest.fixture
def api_server() -> Iterator[RunningServer]:
    """A server that requires requests signed with ACCESS_KEY / SECRET_KEY."""
    yield from _serve(ServerConfig(port=0, credentials={ACCESS_KEY: SECRET_KEY}))


@pytest.fixture
def open_server() -> Iterator[RunningServer]:
    """A server run with authentication off (``--no-auth``)."""
    yield from _serve(ServerConfig(port=0, no_auth=True))


@pytest.fixture
def client(api_server: RunningServer) -> Any:
    """A signed boto3 SageMaker client for ``api_server``."""
    return api_server.client()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test key in AWS's standard variables, and no developer profile to leak in."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SAGEMAKER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def model_archive(tmp_path: Path) -> Callable[[str], str]:
    """``model_archive(handler)``: the handler packed as a model.tar.gz; its file:// URL."""

    def pack(handler: str) -> str:
        folder = write_model(tmp_path / "model-src", handler)
        return tar_model(folder, tmp_path / "model.tar.gz").as_uri()

    return pack
