"""Tables shipped as JSON beside the package, which a user's file may extend or replace.

The instance type table (``instance_types.json``) and the price table (``prices.json``)
share one life: the shipped file is read once, a file named by a setting is laid over it,
and either is read again only when its modification time changes, so that a user who
edits their file sees the change without a restart. Both name the file and the member on
error, as :class:`ValidationError` with the setting as its field.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from batchtransform.errors import ValidationError

__all__ = ["read_table", "user_table"]


def read_table(path: Path, what: str, setting: str) -> Any:
    """The JSON document at ``path``, parsed; ``what`` names the table in errors."""
    return _parse(str(path), path.stat().st_mtime_ns, what, setting)


def user_table(setting: str, what: str) -> tuple[Path, Any] | None:
    """The file the environment variable ``setting`` names, and its document; None if unset.

    Raises :class:`ValidationError` when the file cannot be read or is not JSON.
    """
    user_path = os.environ.get(setting, "").strip()
    if not user_path:
        return None
    path = Path(user_path).expanduser()
    try:
        modified = path.stat().st_mtime_ns
    except OSError as exc:
        raise ValidationError(
            f"{setting} names {path}, which cannot be read: {exc.strerror}", field=setting
        ) from None
    return path, _parse(str(path), modified, what, setting)


@lru_cache(maxsize=16)
def _parse(path: str, modified: int, what: str, setting: str) -> Any:
    """Parse one file; ``modified`` is part of the cache key only."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{what} {path} cannot be read: {exc}", setting) from None
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{what} {path} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            setting,
        ) from None
