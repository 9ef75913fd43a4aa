"""A PostgreSQL server of the tests' own: ``initdb`` into a fresh folder, ``pg_ctl start``
on a Unix socket only (no TCP port at all, so nothing can collide), stopped at the end.

Importable by test modules (``from pgserver import PostgresServer``); ``conftest.py`` turns
it into a session fixture. The server binaries come from Debian's ``postgresql`` package
(``make postgres-server`` installs it when they are missing), found on PATH or under
``/usr/lib/postgresql/<version>/bin``.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as the
package's ``postgres`` user (or ``nobody``), in a folder under the system's temporary
folder that this user owns (pytest's own folders are private to root). The cluster's
default collation is ICU's ``en-US``, as a production database's often is, so tests
see what a locale does to the order of names.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

SUPERUSER = "batchtransform"
START_TIMEOUT_SECONDS = 60
_INITDB_OPTIONS = [
    "--auth=trust",  # reachable only through the socket in a folder of the server's own
    "--encoding=UTF8",
    "--locale=C.UTF-8",
    "--locale-provider=icu",
    "--icu-locale=en-US",
]
_SERVER_SETTINGS = {
    "listen_addresses": "",  # the Unix socket only
    "max_connections": "300",
    # a throwaway test cluster: durability buys nothing here
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


@dataclass(frozen=True)
class PostgresServer:
    """A running test server: its socket folder, and databases made on it."""

    socket_dir: Path

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database``, in the ``postgresql://`` form users write."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def admin(self) -> psycopg.Connection[Any]:
        """An autocommit connection to the ``postgres`` database, for CREATE/DROP DATABASE."""
        return self.connect("postgres")

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create ``name`` (a copy of ``template`` when given); returns its URL."""
        copy = f" TEMPLATE {template}" if template else ""
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}'.encode())
        return self.url(name)

    def connect(self, database: str) -> psycopg.Connection[Any]:
        """An autocommit connection to ``database``, to look behind the code's back."""
        return psycopg.connect(
            host=str(self.socket_dir), user=SUPERUSER, dbname=database, autocommit=True
        )

    def empty_database(self, name: str) -> None:
        """Delete every row of the store's tables in ``name`` (its schema stays)."""
        from batchtransform.store.schema import metadata

        tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
        with self.connect(name) as conn:
            conn.execute(f"TRUNCATE {tables}".encode())

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending the sessions still connected to it."""
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def server_binaries() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else the newest Debian version."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_of)
    if not found:
        raise RuntimeError(
            "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: run "
            "`make postgres-server` (Debian's postgresql package) before the store tests"
        )
    return Path(found[-1]).parent


def _version_of(initdb: str) -> int:
    version = Path(initdb).parent.parent.name
    return int(version) if version.isdigit() else 0


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a fresh cluster, yield it, and stop and remove it whatever happens."""
    bindir = server_binaries()
    owner = _server_user()
    # another user must reach it: /tmp, not a TMPDIR that may sit in root's own folder
    shared_tmp = "/tmp" if owner is not None and os.path.isdir("/tmp") else None
    folder = Path(tempfile.mkdtemp(prefix="batchtransform-pg-", dir=shared_tmp))
    data, log = folder / "data", folder / "server.log"
    try:
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        _as_server_user(
            owner,
            [bindir / "initdb", "-D", data, "-U", SUPERUSER, *_INITDB_OPTIONS],
            folder,
        )
        options = " ".join(f"-c {key}='{value}'" for key, value in _SERVER_SETTINGS.items())
        options += f" -c unix_socket_directories='{folder}'"
        start = [bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-o", options]
        _as_server_user(owner, [*start, "-t", str(START_TIMEOUT_SECONDS), "start"], folder)
        try:
            yield PostgresServer(folder)
        finally:
            stop = [bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"]
            _as_server_user(owner, stop, folder)
    except subprocess.CalledProcessError as exc:
        server_log = log.read_text(errors="replace") if log.exists() else ""
        raise RuntimeError(
            f"{exc.cmd[0]} failed ({exc.returncode}): {exc.stdout}{exc.stderr}\n{server_log}"
        ) from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _server_user() -> pwd.struct_passwd | None:
    """Whom the server runs as: None (this user) unless this user is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, and neither a postgres nor a nobody user exists")


def _as_server_user(owner: pwd.struct_passwd | None, command: list[Any], cwd: Path) -> None:
    """Run a server command (as ``owner`` when given), its output captured for errors."""
    switch: dict[str, Any] = {}
    if owner is not None:
        switch = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    if owner is not None:
        env["HOME"] = str(cwd)
    subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_SECONDS + 30,
        **switch,
    )
