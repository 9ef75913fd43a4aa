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
written, the object gets no output, and what a failed or unfinished range left is removed
(with what a killed writer of its part left behind). The parts of the ranges that were
written stay, each recorded as a commit by the controller, so that a resumed job runs only
the ranges without one (``kept``) and then puts the object together. The parts of a job
that is not resumed are removed once it ended ``BATCHTRANSFORM_KEEP_PARTS_SECONDS`` ago
(default a day), by the next job of the same store to end or a server's watch
(``sweep_kept_parts``); ``0`` removes them at the end of the run, as no resume can use
them then.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable
from dataclasses import replace

from batchtransform import config, objects
from batchtransform.errors import StorageError
from batchtransform.jobs import JobStatus
from batchtransform.plan import WorkItem
from batchtransform.store import JobRecord, Query, Store

__all__ = [
    "KEEP_PARTS_VARIABLE",
    "RangedOutputs",
    "keep_parts_seconds",
    "part_url",
    "sweep_kept_parts",
    "whole_item",
]

KEEP_PARTS_VARIABLE = "BATCHTRANSFORM_KEEP_PARTS_SECONDS"
DEFAULT_KEEP_PARTS_SECONDS = 24 * 3600.0
_PART_SUFFIX = re.compile(r"\.part-\d{5}-of-\d{5}$")
_SCAN_PAGE = 500  # jobs read at a time when looking for kept parts


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

    ``part_written`` records a range whose part is written (``kept``: one an earlier run
    of the job wrote) and says when its object's last part came in; ``publish`` then makes
    the output. ``fail`` marks an object failed; the parts of its other ranges stay, for a
    resumed job. ``unpublished`` says how many parts wait for one at the end of a run.
    """

    def __init__(self, kms_key_id: str | None) -> None:
        self.kms_key_id = kms_key_id
        self.written: dict[str, dict[int, WorkItem]] = {}
        self.failed: set[str] = set()
        self.published: set[str] = set()

    def is_failed(self, item: WorkItem) -> bool:
        return item.output_url in self.failed

    def part_written(self, item: WorkItem) -> bool:
        """Note a range's part; True when it was its object's last one (never for an
        object that failed: its parts wait for a resumed job)."""
        parts = self.written.setdefault(item.output_url, {})
        parts[item.part] = item
        return len(parts) == item.parts and item.output_url not in self.failed

    def kept(self, items: list[WorkItem]) -> list[WorkItem]:
        """Note the parts an earlier run wrote; the ranges whose object they complete."""
        return [item for item in items if self.part_written(item)]

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
        """Mark the item's object failed and remove what the failed range left; False if
        the object had failed already."""
        _remove(item)
        if item.output_url in self.failed:
            return False
        self.failed.add(item.output_url)
        return True

    def unpublished(self) -> int:
        """How many written parts wait for their object's other ranges (kept for resume)."""
        return sum(len(parts) for parts in self.written.values())

    def discard_unpublished(self) -> None:
        """Remove the parts of every object not published, where none is kept for resume."""
        for parts in self.written.values():
            _remove_all(parts.values())
        self.written.clear()


def keep_parts_seconds() -> float:
    """How long the parts a stopped or failed job wrote are kept for a resume (0: not
    kept); ValueError naming the setting if it is not a number of seconds."""
    return config.seconds(KEEP_PARTS_VARIABLE, DEFAULT_KEEP_PARTS_SECONDS, zero_allowed=True)


def sweep_kept_parts(store: Store, now: float | None = None) -> list[str]:
    """Remove the kept parts of every Failed or Stopped job that ended longer than
    ``keep_parts_seconds`` ago; return those jobs' names. A part that cannot be removed is
    logged and left."""
    limit = (time.time() if now is None else now) - keep_parts_seconds()
    expired = []
    for status in (JobStatus.FAILED, JobStatus.STOPPED):
        offset = 0
        query = Query(status_equals=status.value, modified_before=limit, limit=_SCAN_PAGE)
        while page := store.list_jobs(replace(query, offset=offset)):
            offset += len(page)
            expired += [job for job in page if _keeps_parts(job) and (job.end_time or 0) <= limit]
    return [job.name for job in expired if _sweep_job(store, job)]


def _keeps_parts(job: JobRecord) -> bool:
    return bool(job.progress.get("kept_parts"))


def _sweep_job(store: Store, job: JobRecord) -> bool:
    """Remove the parts a job's commits name, once its progress says, in the same statement
    that finds it still ended, that none is kept: a job resumed meanwhile (or swept by
    another process) is left alone. Whether it was swept."""
    progress = {name: value for name, value in job.progress.items() if name != "kept_parts"}
    ended = (JobStatus.FAILED.value, JobStatus.STOPPED.value)
    if not store.update_job(job.name, when_status_in=ended, progress=progress):
        return False
    for commit in store.list_commits(job.name):
        if _PART_SUFFIX.search(commit.output_url):
            _remove_url(commit.output_url)
    return True


def _remove_all(items: Iterable[WorkItem]) -> None:
    for item in items:
        _remove(item)


def _remove(item: WorkItem) -> None:
    """Remove a range's part and what a killed writer of it left."""
    _remove_url(part_url(item))


def _remove_url(url: str) -> None:
    """Remove a part and what a killed writer of it left; failures are logged, not raised:
    the job's outcome does not depend on them."""
    try:
        objects.remove_partials(url)
        objects.delete(url)
    except (StorageError, FileNotFoundError) as exc:
        print(f"could not remove {url}: {exc}", file=sys.stderr, flush=True)
