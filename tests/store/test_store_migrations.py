"""Schema migrations, on SQLite and on PostgreSQL: a database made by a release before
migrations existed is upgraded with every model and job intact, a fresh one gets exactly
the tables the code queries, processes starting at once migrate it once, and a database
that a newer release migrated is refused, untouched."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pgserver import PostgresServer

from batchtransform import cli
from batchtransform.errors import DatabaseSchemaError
from batchtransform.store import JobRecord, ModelRecord, Query, open_store
from batchtransform.store.migrate import BASELINE_REVISION, MIGRATIONS
from batchtransform.store.schema import SCHEMA_REVISION, metadata

# The tables exactly as releases before migrations defined and created them
# (``MetaData.create_all``, in batchtransform/store/sql.py): frozen here, never updated.
_before_migrations = sa.MetaData()
sa.Table(
    "models",
    _before_migrations,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("arn", sa.String(2048), nullable=False),
    sa.Column("creation_time", sa.Float, nullable=False, index=True),
    sa.Column("request", sa.JSON, nullable=False),
)
sa.Table(
    "transform_jobs",
    _before_migrations,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("arn", sa.String(256), nullable=False),
    sa.Column("model_name", sa.String(63), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("creation_time", sa.Float, nullable=False, index=True),
    sa.Column("last_modified_time", sa.Float, nullable=False),
    sa.Column("start_time", sa.Float),
    sa.Column("end_time", sa.Float),
    sa.Column("failure_reason", sa.Text),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("model", sa.JSON, nullable=False),
    sa.Column("progress", sa.JSON, nullable=False),
    sa.Column("controller_pid", sa.Integer),
)

MODELS = [
    ModelRecord("m1", "arn:aws:sagemaker:us-east-1:000000000000:model/m1", 1_700_000_000.25, {
        "ModelName": "m1",
        "PrimaryContainer": {"Image": "batchtransform/python", "Environment": {"K": "välue"}},
    }),
    ModelRecord("Other-Model", "arn:aws:sagemaker:us-east-1:000000000000:model/other-model",
                1_700_000_100.5, {"ModelName": "Other-Model", "Containers": [{"Image": "x"}]}),
]  # fmt: skip


def old_job(name: str, status: str, n: int, **fields: Any) -> JobRecord:
    created = 1_700_000_200.0 + n * 1.5
    return JobRecord(
        **{
            "name": name,
            "arn": f"arn:aws:sagemaker:us-east-1:000000000000:transform-job/{name.lower()}",
            "model_name": "m1",
            "status": status,
            "creation_time": created,
            "last_modified_time": created + 0.125,
            "request": {
                "TransformJobName": name,
                "Environment": {"N": str(n)},
                "MaxPayloadInMB": n,
            },
            "model": MODELS[0].request,
            **fields,
        }
    )


JOBS = [
    old_job("running", "InProgress", 1, start_time=1_700_000_201.0, controller_pid=4242,
            progress={"objects_total": 3, "objects_completed": 1, "records": 10}),
    old_job("done", "Completed", 2, start_time=1.0, end_time=2.0,
            progress={"objects_total": 1, "objects_completed": 1, "bytes_out": 123}),
    old_job("broken", "Failed", 3, failure_reason="ClientError: bad ✗ record",
            progress={"failed_objects": [{"key": "a.csv", "reason": "x"}]}),
    old_job("halted", "Stopped", 4, end_time=9.0),
    old_job("Stopping-Now", "Stopping", 5),
]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with nothing in it, not even a schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name)
    yield url
    server.drop_database(name)


def make_old_database(url: str) -> None:
    """Create the database as a release before migrations did, and fill it."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        _before_migrations.create_all(engine)
        tables = _before_migrations.tables
        with engine.begin() as conn:
            conn.execute(sa.insert(tables["models"]), [vars(m) for m in MODELS])
            conn.execute(sa.insert(tables["transform_jobs"]), [vars(j) for j in JOBS])
    finally:
        engine.dispose()


def revisions(url: str) -> list[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def test_the_migrations_are_one_chain_ending_at_the_code_schema() -> None:
    scripts = ScriptDirectory(str(MIGRATIONS))
    assert scripts.get_heads() == [SCHEMA_REVISION]
    assert scripts.get_bases() == [BASELINE_REVISION]


def test_migrating_an_empty_database_gives_the_tables_the_code_uses(empty_database: str) -> None:
    store = open_store(empty_database)
    engine = store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []
    assert revisions(empty_database) == [SCHEMA_REVISION]


def test_a_database_from_before_migrations_keeps_every_job_and_model(
    empty_database: str,
) -> None:
    make_old_database(empty_database)
    store = open_store(empty_database)
    assert revisions(empty_database) == [SCHEMA_REVISION]
    for job in JOBS:
        assert store.get_job(job.name) == job
    for model in MODELS:
        assert store.get_model(model.name) == model
    everything = Query(limit=100, sort_by="name", descending=False)
    assert [j.name for j in store.list_jobs(everything)] == sorted(j.name for j in JOBS)
    assert [m.name for m in store.list_models(everything)] == sorted(m.name for m in MODELS)
    # and it goes on working: a write after the upgrade, a conditional one
    assert store.update_job("running", {"InProgress"}, status="Completed")
    assert not store.update_job("done", {"InProgress"}, status="Failed")


def test_db_upgrade_says_what_it_did(
    empty_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_old_database(empty_database)
    assert cli.main(["db", "upgrade", "--database-url", empty_database]) == 0
    assert (
        f"schema revision {SCHEMA_REVISION} (was unversioned or empty)" in capsys.readouterr().out
    )
    assert cli.main(["db", "upgrade", "--database-url", empty_database]) == 0
    assert f"schema revision {SCHEMA_REVISION}, already current" in capsys.readouterr().out
    assert open_store(empty_database).get_job("broken") == JOBS[2]


def test_processes_starting_at_once_migrate_once(empty_database: str, tmp_path: Path) -> None:
    make_old_database(empty_database)
    command = [sys.executable, "-m", "batchtransform.cli", "db", "upgrade"]
    starts = [
        subprocess.Popen(
            [*command, "--database-url", empty_database],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    answers = [process.communicate(timeout=120) for process in starts]
    assert [process.returncode for process in starts] == [0, 0, 0], answers
    said = sorted("already current" in out for out, _ in answers)
    assert said == [False, True, True], answers  # one migrated; the others found it done
    assert revisions(empty_database) == [SCHEMA_REVISION]
    assert open_store(empty_database).list_jobs(Query(limit=100, sort_by="name")) == sorted(
        JOBS, key=lambda j: j.name, reverse=True
    )


def test_a_database_newer_than_the_code_is_refused_untouched(
    empty_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_old_database(empty_database)
    open_store(empty_database).close()  # type: ignore[attr-defined]
    engine = sa.create_engine(empty_database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    # a password in the URL is never shown (the test server does not ask for one)
    url = empty_database.replace("batchtransform@", "batchtransform:s3cret@")

    with pytest.raises(DatabaseSchemaError) as refused:
        open_store(url)
    message = str(refused.value)
    assert "schema revision '9999'" in message and repr(SCHEMA_REVISION) in message
    assert "newer release of batchtransform" in message and "s3cret" not in message
    assert (refused.value.revision, refused.value.expected) == ("9999", SCHEMA_REVISION)

    assert cli.main(["db", "upgrade", "--database-url", url]) == cli.EXIT_DATABASE
    assert "schema revision '9999'" in capsys.readouterr().err
    assert revisions(empty_database) == ["9999"]
    # the data is still there, as the newer release left it
    engine = sa.create_engine(empty_database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT name FROM transform_jobs")).scalars().all()
    engine.dispose()
    assert sorted(names) == sorted(j.name for j in JOBS)
