"""Plan first, then run: a job's input becomes self-describing work items.

A work item names one input object (or a byte range of it), where its output goes and how
to call it in messages. A ``Line``, ``RecordIO`` or ``TFRecord`` object larger than the
range size (``BATCHTRANSFORM_RANGE_SIZE_MB``, from the job's ``Environment`` or the
server's environment; default 64, ``0`` off) becomes several items, one per byte range,
which whichever instances are free run. Gzip objects and SplitType ``None`` stay whole: a
gzip stream cannot be entered in the middle, and a ``None`` object is one record.

The ranges planned here are nominal: ``[start, end)`` in bytes of the stored object. The
records a range owns are those that *begin* inside it; the reader aligns both ends to
record boundaries when it reads (``data.ranges``), so consecutive ranges, which compute
the same boundary for the offset they share, neither drop nor repeat a record. The items
of one object share ``output_url``; their outputs are put together in ``part`` order into
that one object (``assembly``).

Record numbers in errors stay absolute within the object: a range that must name a record
counts the records before its aligned start (only then: it costs a read of that prefix).
Byte offsets are absolute too, since a range knows where it starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from batchtransform.errors import ValidationError
from batchtransform.objects import ObjectInfo, output_url

# A whole object up to this size is read in one request, and may be handed to an instance
# behind another so that its input is fetched while that one runs (``executors.local``).
SMALL_OBJECT_BYTES = 1024 * 1024
RANGE_SIZE_ENV = "BATCHTRANSFORM_RANGE_SIZE_MB"
DEFAULT_RANGE_SIZE_MB = 64.0
MIB = 1024 * 1024
# An S3 multipart upload has at most 10,000 parts: an object gets at most this many
# ranges, larger ones where the range size would make more.
MAX_RANGES = 10_000
# SplitTypes whose records a reader can find from any offset (see ``data.ranges``).
RANGED_SPLIT_TYPES = ("Line", "RecordIO", "TFRecord")


@dataclass(frozen=True)
class WorkItem:
    """One unit of work: read ``input_url`` (all of it, or bytes ``[start, end)``), and
    write its output complete or not at all.

    A whole object has ``start`` and ``end`` None and is part 1 of 1; a range is part
    ``part`` (1-based) of the ``parts`` ranges of its object, which all share
    ``output_url``. ``relative`` is the object's name relative to the input (what its
    output is named after).
    """

    index: int
    input_url: str
    output_url: str
    display: str  # "<bucket>/<key>" as the data-log names objects; the path for local files
    size: int  # of the whole object
    relative: str = ""
    start: int | None = None
    end: int | None = None
    part: int = 1
    parts: int = 1

    @property
    def ranged(self) -> bool:
        """Whether this item is one byte range of an object split into several."""
        return self.start is not None

    @property
    def small(self) -> bool:
        """Whether this is a whole object small enough to fetch in one request ahead of its
        turn (``SMALL_OBJECT_BYTES``)."""
        return self.start is None and self.size <= SMALL_OBJECT_BYTES

    @property
    def key(self) -> str:
        """Names this item uniquely, and the same way in every run of the same job with the
        same range size: the relative name, and for a range its nominal bytes
        (``data/a.csv#67108864-134217728``), so that a result recorded under it cannot be
        mistaken for another range's if the range size changed between runs."""
        name = self.relative or self.display
        return name if self.start is None else f"{name}#{self.start}-{self.end}"

    @property
    def label(self) -> str:
        """How messages name the item: the object, and for a range which part it is."""
        if self.start is None:
            return self.display
        return f"{self.display} (bytes {self.start}-{self.end}, part {self.part} of {self.parts})"


def display_name(url: str) -> str:
    """How messages name an object: ``bucket/key`` for S3 (as SageMaker's data-log does)."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        return parts.path or url
    return f"{parts.netloc}{parts.path}"


def range_size(environment: Mapping[str, str]) -> int:
    """The range size in bytes (0: ranges off), from the job's Environment, else this
    process's environment, else the default."""
    value = environment.get(RANGE_SIZE_ENV) or os.environ.get(RANGE_SIZE_ENV)
    if value is None or not value.strip():
        return int(DEFAULT_RANGE_SIZE_MB * MIB)
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = -1.0
    if not megabytes >= 0:
        raise ValidationError(
            f"{RANGE_SIZE_ENV}={value!r} is not a size in MB (0 turns ranges off)",
            f"Environment.{RANGE_SIZE_ENV}",
        )
    return int(megabytes * MIB)


def rangeable(split_type: str, compression: str) -> bool:
    """Whether objects of this SplitType and CompressionType may be split into ranges."""
    return split_type in RANGED_SPLIT_TYPES and compression == "None"


def plan_items(
    objects: Sequence[ObjectInfo], output_path: str, range_bytes: int = 0
) -> list[WorkItem]:
    """The work items of a job's objects, in listing order, the ranges of an object in
    order. ``range_bytes`` (0: none) splits objects larger than it into ranges of that
    size; the caller passes 0 where the job's SplitType or compression allows no ranges.
    Two inputs may never share an output object."""
    items: list[WorkItem] = []
    seen: dict[str, str] = {}
    for info in objects:
        target = output_url(output_path, info.relative)
        if target in seen:
            raise ValidationError(
                f"Inputs {seen[target]} and {info.url} would both write {target}.",
                "TransformOutput.S3OutputPath",
            )
        seen[target] = info.url
        whole = WorkItem(
            len(items), info.url, target, display_name(info.url), info.size, info.relative
        )
        items.extend(_ranges(whole, range_bytes, len(items)))
    return items


def _ranges(whole: WorkItem, range_bytes: int, first_index: int) -> list[WorkItem]:
    """``whole`` as it is, or its ranges when it is larger than ``range_bytes``."""
    if range_bytes <= 0 or whole.size <= range_bytes:
        return [whole]
    range_bytes = max(range_bytes, -(-whole.size // MAX_RANGES))
    parts = -(-whole.size // range_bytes)
    range_bytes = -(-whole.size // parts)  # as many ranges, of even sizes: none left short
    return [
        WorkItem(
            first_index + n,
            whole.input_url,
            whole.output_url,
            whole.display,
            whole.size,
            whole.relative,
            start=n * range_bytes,
            end=min((n + 1) * range_bytes, whole.size),
            part=n + 1,
            parts=parts,
        )
        for n in range(parts)
    ]
