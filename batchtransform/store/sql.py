"""The store on SQLAlchemy Core: SQLite by default, PostgreSQL (tested) or another
SQLAlchemy database by URL.

SQLite runs in WAL mode with a generous busy timeout so that the CLI, the HTTP server and
every job's controller can read and write the same file at once. On PostgreSQL, several
servers and controllers share one database: a name's primary key makes a second create
fail, and a conditional ``UPDATE`` re-checks its ``WHERE`` on the row's newest version, so
two writers of a status never both win. Names and statuses sort by code point on every
database (as SQLite does), not by PostgreSQL's locale.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from batchtransform.store.base import (
    CommitRecord,
    JobRecord,
    ModelRecord,
    Query,
    SampleRecord,
    Store,
)
from batchtransform.store.migrate import ensure_current
from batchtransform.store.schema import committed_outputs, job_samples, models, transform_jobs


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_engine(url: str) -> Engine:
    """An engine for ``url``, its database migrated to this code's schema."""
    engine = engine_for(url)
    try:
        ensure_current(engine)
    except BaseException:
        engine.dispose()  # a refused database leaves no connection open behind it
        raise
    return engine


def engine_for(url: str) -> Engine:
    """An engine for ``url``, its database as it is.

    SQLite gets WAL and a busy timeout. ``postgresql://`` without a driver means psycopg 3
    (SQLAlchemy's own default, psycopg2, is not what the ``[postgres]`` extra installs).
    """
    if not url.startswith("sqlite"):
        return _server_engine(url)
    engine = sa.create_engine(url, connect_args={"timeout": 30}, poolclass=sa.NullPool)
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _server_engine(url: str) -> Engine:
    """A pooled engine for a database server, with a clear word when its driver is missing."""
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        return sa.create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except ModuleNotFoundError as exc:
        extra = " (pip install 'batchtransform[postgres]')" if "psycopg" in str(exc) else ""
        raise ModuleNotFoundError(
            f"the database URL {parsed.render_as_string(hide_password=True)} needs the "
            f"Python module {exc.name!r}{extra}",
            name=exc.name,
        ) from exc


class SQLStore(Store):
    """Store on one SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        # PostgreSQL sorts text by its locale ("job-10" near "job1"); SQLite by code point.
        self._binary = "C" if self.engine.dialect.name == "postgresql" else None
        # A pool's idle connections are closed with the store, not left to the collector
        # (psycopg warns about connections collected open).
        self._closer = weakref.finalize(self, self.engine.dispose)

    def close(self) -> None:
        """Close the pool's connections; the store opens new ones if used again."""
        self.engine.dispose()

    def add_model(self, record: ModelRecord) -> bool:
        return self._insert(models, vars(record))

    def get_model(self, name: str) -> ModelRecord | None:
        row = self._one(sa.select(models).where(models.c.name == name))
        return ModelRecord(**row) if row else None

    def list_models(self, query: Query) -> Sequence[ModelRecord]:
        rows = self._many(_filtered(models, query, self._binary))
        return [ModelRecord(**row) for row in rows]

    def delete_model(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(sa.delete(models).where(models.c.name == name)).rowcount > 0

    def add_job(self, record: JobRecord) -> bool:
        return self._insert(transform_jobs, vars(record))

    def get_job(self, name: str) -> JobRecord | None:
        row = self._one(sa.select(transform_jobs).where(transform_jobs.c.name == name))
        return JobRecord(**row) if row else None

    def list_jobs(self, query: Query) -> Sequence[JobRecord]:
        rows = self._many(_filtered(transform_jobs, query, self._binary))
        return [JobRecord(**row) for row in rows]

    def update_job(
        self, name: str, when_status_in: Collection[str] | None = None, **fields: Any
    ) -> bool:
        statement = sa.update(transform_jobs).where(transform_jobs.c.name == name)
        if when_status_in is not None:
            statement = statement.where(transform_jobs.c.status.in_(list(when_status_in)))
        with self.engine.begin() as conn:
            return conn.execute(statement.values(**fields)).rowcount > 0

    def record_commits(self, commits: Sequence[CommitRecord]) -> None:
        """Delete and insert in one transaction: the same on every database, no upsert."""
        if not commits:
            return
        table = committed_outputs
        with self.engine.begin() as conn:
            for job_name in {commit.job_name for commit in commits}:
                keys = [c.item_key for c in commits if c.job_name == job_name]
                conn.execute(
                    sa.delete(table).where(table.c.job_name == job_name, table.c.item_key.in_(keys))
                )
            conn.execute(sa.insert(table), [vars(commit) for commit in commits])

    def list_commits(self, job_name: str) -> Sequence[CommitRecord]:
        table = committed_outputs
        rows = self._many(sa.select(table).where(table.c.job_name == job_name))
        return [CommitRecord(**row) for row in rows]

    def add_samples(self, samples: Sequence[SampleRecord]) -> None:
        if not samples:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.insert(job_samples), [vars(sample) for sample in samples])

    def list_samples(self, job_name: str, since: float | None = None) -> Sequence[SampleRecord]:
        c = job_samples.c
        statement = sa.select(c.job_name, c.time, c.instance, c["values"])
        statement = statement.where(c.job_name == job_name)
        if since is not None:
            statement = statement.where(c.time > since)
        rows = self._many(statement.order_by(c.time, c.id))
        return [SampleRecord(**row) for row in rows]

    def _insert(self, table: sa.Table, values: dict[str, Any]) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(table).values(**values))
        except IntegrityError:
            return False
        return True

    def _one(self, statement: sa.Select[Any]) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(statement).mappings().first()
        return _decoded(dict(row)) if row else None

    def _many(self, statement: sa.Select[Any]) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [_decoded(dict(row)) for row in conn.execute(statement).mappings()]


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """JSON columns come back as text from some drivers; normalise to objects."""
    for key in ("request", "model", "progress", "counters", "values"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row


def _filtered(table: sa.Table, query: Query, binary_collation: str | None) -> sa.Select[Any]:
    """The list query; ``binary_collation`` makes text sort by code point where needed."""
    c = table.c
    statement = sa.select(table)
    if query.name_contains:
        # case-insensitive, as SQLite's LIKE always was: the same answer on every database
        statement = statement.where(c.name.icontains(query.name_contains, autoescape=True))
    if query.status_equals and "status" in c:
        statement = statement.where(c.status == query.status_equals)
    bounds = [
        (c.creation_time, query.created_after, query.created_before),
        (c.get("last_modified_time"), query.modified_after, query.modified_before),
    ]
    for column, after, before in bounds:
        if column is not None and after is not None:
            statement = statement.where(column > after)
        if column is not None and before is not None:
            statement = statement.where(column < before)
    key: sa.ColumnElement[Any] = c[query.sort_by]
    name: sa.ColumnElement[Any] = c.name
    if binary_collation:
        name = name.collate(binary_collation)
        if isinstance(key.type, sa.String):
            key = key.collate(binary_collation)
    order = [key.desc() if query.descending else key.asc(), name.asc()]
    return statement.order_by(*order).offset(query.offset).limit(query.limit)
