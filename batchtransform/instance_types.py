"""What an ``ml.*`` instance type stands for: its vCPUs, memory and GPUs.

SageMaker sizes an instance by its ``InstanceType``; a self-hosted executor needs the same
figures to decide how many GPUs an instance gets (the local executor) or what an actor asks
the cluster for (Ray). The table ships as data (``instance_types.json`` beside this module,
with its source and date) rather than code, so that a user whose types are missing or
different can name a file of their own in ``BATCHTRANSFORM_INSTANCE_TYPES``: its entries
add to the shipped table or replace the entries of the same name. Both files share one
format::

    {"types": {"ml.g5.xlarge": {"vcpus": 4, "memory_gib": 16, "gpus": 1}, ...}}

(``memory_mib`` may stand in for ``memory_gib``; other top-level keys are ignored.)
``InstanceType: local`` keeps its own meaning, no fixed size: :func:`resources_for` answers
None for it, as for a type the table does not know.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchtransform.data_tables import read_table, user_table
from batchtransform.errors import ValidationError

__all__ = [
    "LOCAL",
    "SETTING",
    "InstanceResources",
    "instance_table",
    "resources_for",
]

LOCAL = "local"
SETTING = "BATCHTRANSFORM_INSTANCE_TYPES"
_SHIPPED = Path(__file__).with_name("instance_types.json")
_WHAT = "instance type table"


@dataclass(frozen=True)
class InstanceResources:
    """One instance's share of a machine: ``gpus`` may be fractional where a user asks."""

    vcpus: float
    memory_mib: int
    gpus: float
    accelerator: str | None = None


def resources_for(instance_type: str) -> InstanceResources | None:
    """The resources of ``instance_type``; None for ``local`` and for types not in the table.

    Raises :class:`ValidationError` naming the file when the user's table does not parse.
    """
    if instance_type == LOCAL:
        return None
    return instance_table().get(instance_type)


def instance_table() -> dict[str, InstanceResources]:
    """The shipped table with the user's file (if ``BATCHTRANSFORM_INSTANCE_TYPES`` names
    one) laid over it. Read again only when the setting or the file's modification changes."""
    table = _entries(_SHIPPED, read_table(_SHIPPED, _WHAT, SETTING))
    user_file = user_table(SETTING, _WHAT)
    if user_file is not None:
        table.update(_entries(*user_file))
    return table


def _entries(path: Path, document: Any) -> dict[str, InstanceResources]:
    """The rows of one parsed table file."""
    types = document.get("types") if isinstance(document, dict) else None
    if not isinstance(types, dict):
        raise ValidationError(
            f'{_WHAT} {path} must be an object with a "types" object '
            '({"types": {"ml.g5.xlarge": {"vcpus": 4, "memory_gib": 16, "gpus": 1}}})',
            SETTING,
        )
    return {name: _entry(str(path), name, fields) for name, fields in types.items()}


def _entry(path: str, name: str, fields: Any) -> InstanceResources:
    """One row of a table, every field checked and named on error."""
    where = f"{_WHAT} {path}, type {name!r}"
    if name == LOCAL:
        raise ValidationError(f"{where}: 'local' has no fixed size and cannot be listed", SETTING)
    if not isinstance(fields, dict):
        raise ValidationError(f"{where}: must be an object, not {type(fields).__name__}", SETTING)
    vcpus = _number(where, fields, "vcpus", minimum_exclusive=True)
    gpus = _number(where, fields, "gpus", minimum_exclusive=False) if "gpus" in fields else 0.0
    if "memory_mib" in fields:
        memory_mib = int(_number(where, fields, "memory_mib", minimum_exclusive=True))
    else:
        memory_mib = int(_number(where, fields, "memory_gib", minimum_exclusive=True) * 1024)
    accelerator = fields.get("accelerator")
    if accelerator is not None and not isinstance(accelerator, str):
        raise ValidationError(f"{where}: accelerator must be a string", SETTING)
    return InstanceResources(vcpus, memory_mib, gpus, accelerator)


def _number(where: str, fields: dict[str, Any], key: str, *, minimum_exclusive: bool) -> float:
    """``fields[key]`` as a finite number above zero (or at least zero)."""
    value = fields.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(f"{where}: {key} must be a number, not {value!r}", SETTING)
    if value < 0 or (minimum_exclusive and value == 0):
        bound = "above 0" if minimum_exclusive else "0 or more"
        raise ValidationError(f"{where}: {key} must be {bound}, not {value!r}", SETTING)
    return float(value)
