"""Bringing a database to the schema this code reads: Alembic migrations, one process at a time.

Every ``open_store`` asks the database for its revision (one small query) and, only when it
is not ``SCHEMA_REVISION``, upgrades it under a lock, so that several servers and
controllers starting at once migrate it exactly once:

* PostgreSQL: a transaction-scoped advisory lock, in the same transaction as the DDL, so a
  failed migration leaves nothing half-done and the lock ends with it;
* SQLite: an exclusive ``flock`` on a file beside the database (SQLite's own transactions
  do not cover Python's DDL statements);
* any other SQLAlchemy database: its own transaction only.

A database made before migrations existed (its tables, no ``alembic_version``) is stamped at
the first revision, which describes it, and upgraded from there. A database at a revision
this code does not know was upgraded by a newer batchtransform: it is refused, unchanged.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from batchtransform.errors import DatabaseSchemaError
from batchtransform.store.schema import SCHEMA_REVISION

__all__ = ["BASELINE_REVISION", "MIGRATIONS", "current_revision", "ensure_current", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE_REVISION = "0001"
"""The revision that describes the tables of releases made before migrations."""

_ADVISORY_LOCK_KEY = 0x62617463  # "batc": any fixed number shared by every batchtransform


def current_revision(conn: Connection) -> str | None:
    """The database's Alembic revision; None when it has never been migrated."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    revisions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return revisions[0] if len(revisions) == 1 else ",".join(sorted(revisions)) or None


def ensure_current(engine: Engine) -> None:
    """Upgrade the database behind ``engine`` if it is behind; cheap when it is current."""
    with engine.connect() as conn:
        if current_revision(conn) == SCHEMA_REVISION:
            return
    upgrade(engine)


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to ``SCHEMA_REVISION`` under the lock; returns (revision before, after).

    Raises ``DatabaseSchemaError`` when the database is at a revision this code does not
    know (a newer release migrated it).
    """
    from alembic import command
    from alembic.config import Config

    with _locked(engine) as conn:
        before = current_revision(conn)
        if before == SCHEMA_REVISION:
            return before, before
        _check_known(before, engine)
        alembic_config = Config()
        alembic_config.set_main_option("script_location", str(MIGRATIONS))
        alembic_config.attributes["connection"] = conn
        if before is None and sa.inspect(conn).has_table("transform_jobs"):
            command.stamp(alembic_config, BASELINE_REVISION)
        command.upgrade(alembic_config, SCHEMA_REVISION)
        return before, SCHEMA_REVISION


def _check_known(revision: str | None, engine: Engine) -> None:
    """Refuse a revision that is not among this code's migrations."""
    from alembic.script import ScriptDirectory

    if revision is None:
        return
    known = {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    if revision not in known:
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseSchemaError(
            f"the database {where} is at schema revision {revision!r}, which this "
            f"batchtransform does not know (it reads revision {SCHEMA_REVISION!r}): a newer "
            "release of batchtransform has upgraded it; run that release or a later one",
            revision=revision,
            expected=SCHEMA_REVISION,
        )


@contextlib.contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that no other process migrating this database holds."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY)))
            yield conn
    elif engine.dialect.name == "sqlite":
        with _file_lock(engine.url.database), engine.begin() as conn:
            yield conn
    else:  # untested databases: their own transaction only
        with engine.begin() as conn:
            yield conn


@contextlib.contextmanager
def _file_lock(database: str | None) -> Iterator[None]:
    """An exclusive lock on ``<database>.migrate.lock``; none for in-memory databases."""
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
