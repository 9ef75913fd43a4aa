"""Persistence behind a small interface (``Store``); SQLAlchemy Core implements it.

Importing this package does not load SQLAlchemy: ``open_store`` does. A job's controller
starts its instances first and loads the database layer while they start.

Modules: ``base`` (the contract), ``sql`` (SQLite, PostgreSQL), ``schema`` (the tables as
the code uses them and ``SCHEMA_REVISION``), ``migrate`` (upgrades under a lock, refusal
of newer databases), ``migrations/`` (Alembic's ``env.py`` and ``versions/``).

The schema is versioned: ``open_store`` migrates an older database on the spot (so does
``batchtransform db upgrade``) and refuses a newer one (``DatabaseSchemaError``).

Adding a migration (a new table or column):

1. Add ``migrations/versions/NNNN_what_it_does.py``, numbered after the newest one, with
   ``revision = "NNNN"``, ``down_revision`` the newest one's ``revision``, and
   ``upgrade()`` (and ``downgrade()``) written with ``alembic.op`` (``op.create_table``,
   ``op.add_column``, ...). Keep it self-contained: never import ``schema`` from it, as a
   migration must do the same thing whatever the tables become later. SQLite runs it in
   Alembic's batch mode, so ``op.alter_column`` and ``op.drop_column`` work there too.
2. Describe the result in ``schema.py`` (the ``sa.Table`` the code queries) and set
   ``SCHEMA_REVISION`` to ``"NNNN"``.
3. ``tests/store/test_migrations.py`` checks that the chain has one head equal to
   ``SCHEMA_REVISION`` and that migrating gives exactly ``schema.py``'s tables, on SQLite
   and PostgreSQL; give the new table or column a case in its upgrade-with-data test.
"""

from __future__ import annotations

from batchtransform import config
from batchtransform.store.base import (
    CommitRecord,
    JobRecord,
    ModelRecord,
    Query,
    SampleRecord,
    Store,
)

__all__ = [
    "CommitRecord",
    "JobRecord",
    "ModelRecord",
    "Query",
    "SampleRecord",
    "Store",
    "open_store",
    "upgrade_database",
]


def open_store(url: str | None = None) -> Store:
    """The store at ``url``, or the configured default (SQLite under BATCHTRANSFORM_HOME)."""
    from batchtransform.store.sql import SQLStore

    return SQLStore(url or config.database_url())


def upgrade_database(url: str | None = None) -> tuple[str | None, str]:
    """Migrate the database at ``url`` (or the configured one) to this code's schema.

    Returns its schema revision before (None: never migrated) and after. Raises
    ``DatabaseSchemaError`` for a database that a newer release has migrated.
    """
    from batchtransform.store.migrate import upgrade
    from batchtransform.store.sql import engine_for

    engine = engine_for(url or config.database_url())
    try:
        return upgrade(engine)
    finally:
        engine.dispose()
