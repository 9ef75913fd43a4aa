"""Shared fixtures: an isolated BATCHTRANSFORM_HOME per test, and real S3 servers.

Two S3 servers run once per session, each only if a test asks for it:

* ``moto_s3``: moto's in-process server, fast, for unit tests;
* ``seaweed_s3``: SeaweedFS (``weed mini``) as a separate process, a real S3 implementation
  that checks SigV4 signatures and keeps multipart uploads like S3 does.

Tests reach them the way the service does, through AWS's standard environment variables:
``s3_env(server)`` sets them for one test, and the ``s3`` fixture runs a test once per
server. ``s3_bucket`` gives each test a fresh bucket.

Databases: ``database_url`` runs a test once on SQLite and once on a PostgreSQL database of
its own, on a server that ``postgres`` starts once per session (``tests/pgserver.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import s3fs
from pgserver import PostgresServer, running_postgres
from s3servers import S3Server, make_bucket, running_seaweed


@pytest.fixture(autouse=True)
def batchtransform_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own BATCHTRANSFORM_HOME, so none touches ~/.batchtransform."""
    home = tmp_path_factory.mktemp("batchtransform-home")
    monkeypatch.setenv("BATCHTRANSFORM_HOME", str(home))
    return home


# --- databases --------------------------------------------------------------------------

MIGRATED_TEMPLATE = "migrated_template"
SHARED_DATABASE = "tests"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session, with a database migrated to the current schema
    (``MIGRATED_TEMPLATE``) that tests' own databases are copied from."""
    from batchtransform.store.sql import SQLStore

    with running_postgres() as server:
        SQLStore(server.create_database(MIGRATED_TEMPLATE)).close()
        yield server


@pytest.fixture(scope="session")
def postgres_shared(postgres: PostgresServer) -> str:
    """The database that ``database_url`` tests take turns on, emptied before each."""
    return postgres.create_database(SHARED_DATABASE, template=MIGRATED_TEMPLATE)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test on SQLite (the default, under its BATCHTRANSFORM_HOME) and on PostgreSQL,
    either one set as BATCHTRANSFORM_DATABASE_URL and empty.

    The PostgreSQL tests share one database, its tables emptied before each test: a
    TRUNCATE takes milliseconds, a new database a third of a second.
    """
    if request.param == "sqlite":
        monkeypatch.delenv("BATCHTRANSFORM_DATABASE_URL", raising=False)
        from batchtransform import config

        return config.database_url()
    url: str = request.getfixturevalue("postgres_shared")
    server: PostgresServer = request.getfixturevalue("postgres")
    server.empty_database(SHARED_DATABASE)
    monkeypatch.setenv("BATCHTRANSFORM_DATABASE_URL", url)
    return url


# --- moto --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    """moto's S3 in a thread of this process, on a free loopback port."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(f"http://{host}:{port}", "testing", "testing")
    finally:
        server.stop()


# --- SeaweedFS ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS ``weed mini`` with S3 on a free loopback port and SigV4 credentials."""
    with running_seaweed(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


# --- environment -------------------------------------------------------------------------


@pytest.fixture
def s3_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[[S3Server], S3Server]]:
    """Point AWS's standard variables at a test server for this test; returns a setter.

    The shared AWS config files are pointed at nothing so a developer's profile cannot
    leak in, and s3fs's instance cache is cleared both ways, so no filesystem outlives
    the settings (or the server) it was made for.
    """

    def activate(server: S3Server) -> S3Server:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint_url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        s3fs.S3FileSystem.clear_instance_cache()
        return server

    yield activate
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(params=["moto", "seaweed"])
def s3(request: pytest.FixtureRequest, s3_env: Callable[[S3Server], S3Server]) -> S3Server:
    """Each test using this runs against moto and against SeaweedFS, with the env set."""
    server: S3Server = request.getfixturevalue(f"{request.param}_s3")
    return s3_env(server)


@pytest.fixture
def new_bucket() -> Iterator[Callable[[S3Server], str]]:
    """``new_bucket(server)`` creates a uniquely named bucket, deleted after the test."""
    created: list[tuple[S3Server, str]] = []

    def create(server: S3Server) -> str:
        name = make_bucket(server)
        created.append((server, name))
        return name

    yield create
    for server, name in created:
        server.remove_bucket(name)


@pytest.fixture
def s3_bucket(s3: S3Server, new_bucket: Callable[[S3Server], str]) -> str:
    """A fresh, empty bucket on the current ``s3`` server, deleted after the test."""
    return new_bucket(s3)
