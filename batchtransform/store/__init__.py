"""Persistence behind a small interface (``Store``); SQLAlchemy Core implements it.

Importing this package does not load SQLAlchemy: ``open_store`` does. A job's controller
starts its instances first and loads the database layer while they start.
"""

from __future__ import annotations

from batchtransform import config
from batchtransform.store.base import JobRecord, ModelRecord, Query, Store

__all__ = ["JobRecord", "ModelRecord", "Query", "Store", "open_store"]


def open_store(url: str | None = None) -> Store:
    """The store at ``url``, or the configured default (SQLite under BATCHTRANSFORM_HOME)."""
    from batchtransform.store.sql import SQLStore

    return SQLStore(url or config.database_url())
