"""One output from many ranges: where each range's output waits, and how they become one.

A range of an object writes its output, atomically as any output, to a part object of its
own (``part_url``): a hidden sibling of the output locally
(``.<name>.out.part-00002-of-00016``), the output's key with that suffix on S3 (which has
no hidden names). When every part of the object is written, the controller publishes the
output (``RangedOutputs``): ``objects.concatenate`` puts the parts together in order, on
S3 as one multipart upload whose parts S3 copies from the part objects, locally by
appending to the first part and renaming, and then removes the parts. The output appears
whole or not at all.

When any range of an object fails, is lost, or the job stops before all its ranges are
written, the object gets no output and every part written so far is removed (with what a
killed writer of a part left behind), so nothing of a failed or stopped range stays.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import replace

from batchtransform import objects
from batchtransform.errors import StorageError
from batchtransform.plan import WorkItem

__all__ = ["RangedOutputs", "part_url", "whole_item"]


def part_url(item: WorkItem) -> str:
    """Where the item writes its output: the output itself for a whole object, the part
    object for a range."""
    if not item.ranged:
        return item.output_url
    suffix = f".part-{item.part:05d}-of-{item.parts:05d}"
    if "://" in item.output_url and not item.output_url.startswith("file://"):
        return f"{item.output_url}{suffix}"
    folder, _, name = item.output_url.rpartition("/")
    return f"{folder}/.{name}{suffix}"


def whole_item(item: WorkItem) -> WorkItem:
    """The item that stands for the whole object a range belongs to (numbered as its
    first range: the ranges of an object are planned one after the other)."""
    if not item.ranged:
        return item
    return replace(item, index=item.index - item.part + 1, start=None, end=None, part=1, parts=1)


class RangedOutputs:
    """The controller's account of the objects that run as ranges.

    ``part_written`` records a range whose part is written and says when its object's
    last part came in; ``publish`` then makes the output. ``fail`` marks an object failed
    and removes its parts; parts of a failed object that finish later are removed as they
    come. ``discard_unpublished`` removes whatever is left at the end of a run.
    """

    def __init__(self, kms_key_id: str | None) -> None:
        self.kms_key_id = kms_key_id
        self.written: dict[str, dict[int, WorkItem]] = {}
        self.failed: set[str] = set()
        self.published: set[str] = set()

    def is_failed(self, item: WorkItem) -> bool:
        return item.output_url in self.failed

    def part_written(self, item: WorkItem) -> bool:
        """Note a range's part; True when it was its object's last one. A part of an object
        that failed already is removed instead."""
        if item.output_url in self.failed:
            _remove(item)
            return False
        parts = self.written.setdefault(item.output_url, {})
        parts[item.part] = item
        return len(parts) == item.parts

    def publish(self, item: WorkItem) -> None:
        """Put the object's parts together into its output; StorageError if the store
        fails (the parts are then removed)."""
        parts = self.written.pop(item.output_url)
        urls = [part_url(parts[number]) for number in sorted(parts)]
        try:
            objects.concatenate(item.output_url, urls, self.kms_key_id)
        except (StorageError, FileNotFoundError) as exc:
            self.failed.add(item.output_url)
            _remove_all(parts.values())
            raise StorageError(f"cannot assemble {item.output_url} from its parts: {exc}") from exc
        self.published.add(item.output_url)

    def fail(self, item: WorkItem) -> bool:
        """Mark the item's object failed and remove its parts; False if it was already."""
        if item.output_url in self.failed:
            _remove(item)
            return False
        self.failed.add(item.output_url)
        _remove_all([*self.written.pop(item.output_url, {}).values(), item])
        return True

    def discard_unpublished(self, in_flight: Iterable[WorkItem] = ()) -> None:
        """Remove the parts of every object not published (a stop, a failure), and what
        writers of the ``in_flight`` ranges left."""
        for parts in self.written.values():
            _remove_all(parts.values())
        self.written.clear()
        _remove_all(item for item in in_flight if item.ranged)


def _remove_all(items: Iterable[WorkItem]) -> None:
    for item in items:
        _remove(item)


def _remove(item: WorkItem) -> None:
    """Remove a range's part and what a killed writer of it left; failures are logged,
    not raised: the job's outcome does not depend on them."""
    url = part_url(item)
    try:
        objects.remove_partials(url)
        objects.delete(url)
    except (StorageError, FileNotFoundError) as exc:
        print(f"could not remove {url}: {exc}", file=sys.stderr, flush=True)
