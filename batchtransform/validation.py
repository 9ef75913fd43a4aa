"""Validate requests against SageMaker's own service model, shipped with botocore.

Re-typing hundreds of shapes by hand would drift from AWS; botocore already carries them
(`sagemaker/2017-07-24/service-2.json`). botocore's client-side validator checks only types,
required members and minimums, so this module walks the same shapes and also checks what
the service checks: maximums, patterns (full match, as the service does) and enums.

Deliberate relaxations, so that the same documents run locally:
- storage URLs (S3Uri, ModelDataUrl, ModelDataSource's S3Uri) may also be ``file://`` URLs
  or local paths;
- InstanceType accepts any string ("local", "ml.m5.large", ...).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

from batchtransform.errors import ValidationError

__all__ = ["validate_request"]

# Shapes whose pattern only admits S3/HTTPS URLs; locally a file:// URL or a path is fine.
_STORAGE_URL_SHAPES = frozenset({"S3Uri", "Url", "S3ModelUri"})
_ANY_STRING_SHAPES = frozenset({"TransformInstanceType"})
_LOCAL_URL = re.compile(r"(file|memory)://.*|/.*|\.{0,2}[^:]*", re.DOTALL)
# Java regex classes in a few patterns (Tags) that Python's re lacks; close equivalents.
# Letters become \w, slightly wider (it adds digits and "_", which those patterns admit anyway).
_JAVA_CLASSES = {r"\p{L}": r"\w", r"\p{Z}": r"\s", r"\p{N}": r"\d"}


@functools.cache
def _service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


def operation_model(operation: str) -> OperationModel:
    """The botocore model of one SageMaker operation (``CreateTransformJob``, ...)."""
    try:
        return _service_model().operation_model(operation)
    except Exception as exc:  # botocore raises OperationNotFoundError
        raise ValidationError(f"Unknown operation {operation!r}.") from exc


def validate_request(operation: str, params: Mapping[str, Any]) -> None:
    """Raise ValidationError listing every rule ``params`` breaks, as the service words it."""
    shape = operation_model(operation).input_shape
    problems = list(_check(params, shape, "")) if shape is not None else []
    if not problems:
        return
    count = len(problems)
    noun = "error" if count == 1 else "errors"
    raise ValidationError(
        f"{count} validation {noun} detected: " + "; ".join(text for _, text in problems),
        field=problems[0][0],
    )


Problem = tuple[str, str]


def _check(value: Any, shape: Shape, path: str) -> Iterator[Problem]:
    checker = _CHECKERS.get(shape.type_name)
    if checker is not None:
        yield from checker(value, shape, path)


def _fail(value: Any, path: str, rule: str) -> Problem:
    shown = value if isinstance(value, (str, int, float, bool)) else type(value).__name__
    return path, f"Value '{shown}' at '{path}' failed to satisfy constraint: {rule}"


def _check_structure(value: Any, shape: Shape, path: str) -> Iterator[Problem]:
    if not isinstance(value, Mapping):
        yield path or "$", f"'{path or 'request'}' must be an object, not {type(value).__name__}"
        return
    members = shape.members  # type: ignore[attr-defined]
    for name in shape.required_members:
        if value.get(name) is None:
            yield _join(path, name), f"Missing required field '{_join(path, name)}'"
    for name, item in value.items():
        if name not in members:
            allowed = ", ".join(members)
            yield _join(path, name), f"Unknown field '{_join(path, name)}'; valid: {allowed}"
        elif item is not None:
            yield from _check(item, members[name], _join(path, name))


def _check_list(value: Any, shape: Shape, path: str) -> Iterator[Problem]:
    if not isinstance(value, list):
        yield path, f"'{path}' must be a list, not {type(value).__name__}"
        return
    yield from _check_size(value, len(value), shape, path, "length")
    for index, item in enumerate(value):
        yield from _check(item, shape.member, f"{path}[{index}]")  # type: ignore[attr-defined]


def _check_map(value: Any, shape: Shape, path: str) -> Iterator[Problem]:
    if not isinstance(value, Mapping):
        yield path, f"'{path}' must be an object, not {type(value).__name__}"
        return
    yield from _check_size(value, len(value), shape, path, "number of entries")
    for key, item in value.items():
        yield from _check(key, shape.key, f"{path}.key")  # type: ignore[attr-defined]
        yield from _check(item, shape.value, f"{path}.{key}")  # type: ignore[attr-defined]


def _check_string(value: Any, shape: Shape, path: str) -> Iterator[Problem]:
    if not isinstance(value, str):
        yield path, f"'{path}' must be a string, not {type(value).__name__}"
        return
    yield from _check_size(value, len(value), shape, path, "length")
    if shape.name in _ANY_STRING_SHAPES:
        return
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        yield _fail(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
    pattern = shape.metadata.get("pattern")
    if pattern and not _matches(pattern, value, shape.name):
        yield _fail(value, path, f"Member must satisfy regular expression pattern: {pattern}")


def _check_integer(value: Any, shape: Shape, path: str) -> Iterator[Problem]:
    if isinstance(value, bool) or not isinstance(value, int):
        yield path, f"'{path}' must be an integer, not {type(value).__name__}"
        return
    yield from _check_size(value, value, shape, path, "value")


def _check_boolean(value: Any, shape: Shape, path: str) -> Iterator[Problem]:
    if not isinstance(value, bool):
        yield path, f"'{path}' must be a boolean, not {type(value).__name__}"


def _check_timestamp(value: Any, shape: Shape, path: str) -> Iterator[Problem]:
    if isinstance(value, (dt.datetime, int, float)) and not isinstance(value, bool):
        return
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return
        except ValueError:
            pass
    yield path, f"'{path}' must be a timestamp (epoch seconds or ISO 8601), not {value!r}"


def _check_size(value: Any, size: int, shape: Shape, path: str, what: str) -> Iterator[Problem]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        yield _fail(value, path, f"Member must have {what} greater than or equal to {low}")
    if high is not None and size > high:
        yield _fail(value, path, f"Member must have {what} less than or equal to {high}")


def _matches(pattern: str, value: str, shape_name: str) -> bool:
    if _python_pattern(pattern).fullmatch(value):
        return True
    return shape_name in _STORAGE_URL_SHAPES and bool(_LOCAL_URL.fullmatch(value))


@functools.cache
def _python_pattern(pattern: str) -> re.Pattern[str]:
    for java, python in _JAVA_CLASSES.items():
        pattern = pattern.replace(java, python)
    return re.compile(pattern, re.DOTALL)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_CHECKERS = {
    "structure": _check_structure,
    "list": _check_list,
    "map": _check_map,
    "string": _check_string,
    "integer": _check_integer,
    "long": _check_integer,
    "boolean": _check_boolean,
    "timestamp": _check_timestamp,
}
