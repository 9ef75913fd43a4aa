"""Media types and Accept headers, as the SageMaker inference toolkit reads them.

Apart from the codecs so that the places that only route content types (pipelines, the
serial runtime) do not load numpy: an instance sets its thread limits before numpy starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = [
    "ANY_TYPE",
    "CSV",
    "DEFAULT_ACCEPT_ENV",
    "JSON",
    "JSON_LINES",
    "NPY",
    "SUPPORTED_CONTENT_TYPES",
    "media_type",
    "parse_accept",
    "resolve_accept",
]

CSV = "text/csv"
JSON = "application/json"
JSON_LINES = "application/jsonlines"
NPY = "application/x-npy"
SUPPORTED_CONTENT_TYPES = (CSV, JSON, JSON_LINES, NPY)

DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
ANY_TYPE = "*/*"

_ALIASES = {"application/x-jsonlines": JSON_LINES}


def media_type(content_type: str) -> str:
    """``Text/CSV; charset=utf-8`` -> ``text/csv``, and aliases to their canonical name."""
    base = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def resolve_accept(accept: str | None, environment: Mapping[str, str] | None = None) -> str:
    """``accept``, or the default for a missing Accept or ``*/*`` as the toolkit has it:
    ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` (from ``environment``, else ``os.environ``),
    else ``application/json``."""
    if accept and accept.strip() != ANY_TYPE:
        return accept
    env = os.environ if environment is None else environment
    default = env.get(DEFAULT_ACCEPT_ENV) or JSON
    return JSON if default.strip() == ANY_TYPE else default


def parse_accept(accept: str) -> list[str]:
    """The media types of an Accept header in the order given, without parameters or q-values.

    Like the toolkit we do not sort by q-value: the first supported type wins.
    """
    parts = (part.split(";", 1)[0].strip().lower() for part in accept.split(","))
    return [part for part in parts if part]
