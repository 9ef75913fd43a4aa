"""Plan first, then run: a job's input becomes self-describing work items.

A work item names one input object, where its output goes and how to call it in messages.
Today an item is a whole object, as SageMaker does; byte ranges of large objects will be
items too (with the same output and a part number), so that nothing downstream assumes
"one item, one output".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from batchtransform.errors import ValidationError
from batchtransform.objects import ObjectInfo, output_url


@dataclass(frozen=True)
class WorkItem:
    """One unit of work: read ``input_url``, write ``output_url`` complete or not at all."""

    index: int
    input_url: str
    output_url: str
    display: str  # "<bucket>/<key>" as the data-log names objects; the path for local files
    size: int


def display_name(url: str) -> str:
    """How messages name an object: ``bucket/key`` for S3 (as SageMaker's data-log does)."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        return parts.path or url
    return f"{parts.netloc}{parts.path}"


def plan_items(objects: Sequence[ObjectInfo], output_path: str) -> list[WorkItem]:
    """One work item per input object. Two inputs may never share an output object."""
    items: list[WorkItem] = []
    seen: dict[str, str] = {}
    for index, info in enumerate(objects):
        target = output_url(output_path, info.relative)
        if target in seen:
            raise ValidationError(
                f"Inputs {seen[target]} and {info.url} would both write {target}.",
                "TransformOutput.S3OutputPath",
            )
        seen[target] = info.url
        items.append(WorkItem(index, info.url, target, display_name(info.url), info.size))
    return items
