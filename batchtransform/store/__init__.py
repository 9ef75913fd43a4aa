"""Persistence behind a small interface (``Store``); SQLAlchemy Core implements it."""

from __future__ import annotations

from batchtransform import config
from batchtransform.store.base import JobRecord, ModelRecord, Query, Store
from batchtransform.store.sql import SQLStore

__all__ = ["JobRecord", "ModelRecord", "Query", "SQLStore", "Store", "open_store"]


def open_store(url: str | None = None) -> Store:
    """The store at ``url``, or the configured default (SQLite under BATCHTRANSFORM_HOME)."""
    return SQLStore(url or config.database_url())
