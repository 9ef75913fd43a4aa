"""sagemaker-containers' ``modules`` (``beta.framework.modules``), the part serving scripts
can use: ``exists``. Downloading, installing and running user modules (``import_module``,
``run_module``, ``install``) is the runtime's own work here and is not provided.
"""

from __future__ import annotations

import importlib.util

__all__ = ["exists"]


def exists(name: str) -> bool:
    """Whether a module of that name can be imported."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
