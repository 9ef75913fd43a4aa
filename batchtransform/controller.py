"""Runs one transform job: plan → executor → progress → Completed, Failed or Stopped.

One controller per job, in its own process (``launch_detached``), so the job outlives the
client that created it. It knows nothing of HTTP or the CLI: it reads the job from the
store, lists the input, hands work items to the executor's instances, records progress,
and ends the job through ``jobs.transition``. Instances are gone when it returns, whatever
happened.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchtransform import config, manifests, objects
from batchtransform.assembly import (
    RangedOutputs,
    keep_parts_seconds,
    part_url,
    sweep_kept_parts,
    whole_item,
)
from batchtransform.data.record_errors import errors_part_url, errors_url, limit_from
from batchtransform.errors import BatchTransformError, StorageError, one_line
from batchtransform.executors import Event, EventKind, Executor, create_executor
from batchtransform.instance import InstanceFactory, ItemResult
from batchtransform.job_queue import Turn, enqueue, withdraw
from batchtransform.jobs import JobStatus, transition
from batchtransform.objects import ObjectInfo
from batchtransform.plan import WorkItem, plan_items, range_size, rangeable
from batchtransform.shapes import ModelSpec, TransformJobSpec
from batchtransform.store import CommitRecord, JobRecord, Store, open_store
from batchtransform.telemetry import InstanceLifetimes, Latency, SampleBuffer, instance_name

_STATUS_POLL_SECONDS = 0.5
_PROGRESS_SAVE_SECONDS = 1.0
_COUNTERS = ("records", "batches", "bytes_in", "bytes_out", "failed_records", "retries", "restarts")
# S3 keeps whole seconds (a multipart object: when its upload began), and its clock may
# differ a little from ours: an output written this long before its item began still counts.
_CLOCK_SLACK_SECONDS = 2.0
_INTERNAL = "InternalServerError"


@dataclass
class Progress:
    """What the job has done so far; saved to the store as the Describe ``Progress``."""

    objects_total: int = 0
    objects_completed: int = 0
    objects_failed: int = 0
    failed_objects: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    start_failure: str | None = None
    counters: dict[int, dict[str, int]] = field(default_factory=dict)  # per item
    queued: dict[str, Any] | None = None  # the job's place while it waits for its turn
    resumes: int = 0  # how often the job was resumed (ResumeTransformJob)
    # range parts written whose object is not put together yet: kept for a resume if the
    # run ends so, even by a killed controller (saved with the progress)
    kept_parts: int = 0
    latencies: dict[int, Latency] = field(default_factory=dict)  # per item: its model calls

    def as_record(self) -> dict[str, Any]:
        totals = {name: sum(c.get(name, 0) for c in self.counters.values()) for name in _COUNTERS}
        return {
            "objects_total": self.objects_total,
            "objects_completed": self.objects_completed,
            "objects_failed": self.objects_failed,
            "failed_objects": self.failed_objects[:100],
            "failures": [
                {"object": name, "reason": reason}
                for name, reason in zip(self.failed_objects[:100], self.reasons, strict=False)
            ],
            **totals,
            "latency": Latency.merged(self.latencies.values()).as_record(),
            **({"queued": self.queued} if self.queued else {}),
            **({"resumes": self.resumes} if self.resumes else {}),
            **({"kept_parts": self.kept_parts} if self.kept_parts else {}),
        }


class JobRun:
    """One run of one job; ``run`` returns once the job has reached a final status."""

    def __init__(
        self, open_store: Callable[[], Store], record: JobRecord, executor: Executor
    ) -> None:
        self._open_store, self.record, self.executor = open_store, record, executor
        self.job = TransformJobSpec.from_request(record.request, record.creation_time)
        self.model = ModelSpec.from_request(record.model)
        self.progress = Progress(resumes=record.progress.get("resumes", 0))
        self.in_flight: dict[int, WorkItem] = {}
        self.completed: list[WorkItem] = []  # items whose output was written
        self.objects: list[WorkItem] = []  # one item per input object (a range's: whole)
        self.ranged = RangedOutputs(self.job.output_kms_key)  # objects run as ranges
        self.started_at: dict[int, float] = {}  # item index -> when an instance took it
        self.commits: list[CommitRecord] = []  # committed outputs not yet saved
        self.record_limit = limit_from(self.job.environment)
        # telemetry: instance-seconds (an earlier run's kept on resume), samples, holders
        earlier = record.progress.get("instance_seconds")
        self.lifetimes = InstanceLifetimes(self.job.instance_type, earlier)
        self.samples = SampleBuffer(record.name)
        self.holders: dict[int, int] = {}  # item index -> the instance that took it
        self._last_poll = self._last_save = 0.0
        self._stopping = False

    @functools.cached_property
    def store(self) -> Store:
        """Opened at first use, which is after the instances were started when the record
        was handed over, so that loading the database layer overlaps their start."""
        return self._open_store()

    def run(self) -> None:
        turn = Turn(self.job, self.executor)  # the job's place in this machine's queue
        try:
            items = self._plan()
            if not self.objects:  # nothing to run: the plan ended the job
                return
            finished = True  # a resumed job may find all its work done
            if items:
                admitted = turn.admit(
                    min(self.job.instance_count, len(items)),  # more would only idle
                    lambda: self._should_stop(save=False),
                    self._on_queued,
                )
                if admitted is None:  # stopped while queued
                    self._end(JobStatus.STOPPED)
                    return
                with admitted:  # the slots are held until every instance is gone
                    finished = admitted.executor.run(
                        items,
                        InstanceFactory(self.job, self.model),
                        admitted.instances,
                        self._on_event,
                        self._should_stop,
                    )
                self._settle_in_flight()
            self._keep_parts()
            manifests.write_capture(self.job, self.objects, self.completed)
            self._finish(finished)
        except BatchTransformError as exc:
            self._end(JobStatus.FAILED, f"ClientError: {exc}")
        except Exception as exc:
            traceback.print_exc()
            self._end(JobStatus.FAILED, f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            turn.close()
        _sweep_kept_parts(self.store)

    def _keep_parts(self) -> None:
        """The parts of objects not put together stay for a resume (counted in the
        progress, for ``sweep_kept_parts``), unless none are to be kept."""
        if self.progress.kept_parts and keep_parts_seconds() == 0:
            self.ranged.discard_unpublished()
            self.progress.kept_parts = 0
        elif self.progress.kept_parts:
            print(
                f"kept {self.progress.kept_parts} range parts for a resume",
                file=sys.stderr,
                flush=True,
            )

    def _plan(self) -> list[WorkItem]:
        found = self._list_inputs()
        if not found:
            self._end(
                JobStatus.FAILED,
                f"ClientError: no input objects found under S3Uri {self.job.input_uri}.",
            )
            return []
        items = plan_items(found, self.job.output_path, self._range_bytes())
        self.objects = [whole_item(item) for item in items if item.part == 1]
        self.progress.objects_total = len(self.objects)
        if self.progress.resumes:
            return self._not_committed(items)
        return items

    def _not_committed(self, items: list[WorkItem]) -> list[WorkItem]:
        """A resumed job's work: the items without a committed output that is still there
        as it was committed, or whose output lacks failed records (record errors), which
        may pass now. The others count as done, with their first run's counters; a range
        whose part an earlier run kept waits for its object's other ranges."""
        commits = {commit.item_key: commit for commit in self.store.list_commits(self.record.name)}
        left, kept = [], []
        for item in items:
            whole = whole_item(item)
            if commit := _unchanged(commits.get(whole.key), whole):
                if item.part == 1:
                    self.progress.objects_completed += 1
                    self.progress.counters[whole.index] = dict(commit.counters)
                    self.completed.append(whole)
            elif item.ranged and (commit := _unchanged(commits.get(item.key), item)):
                self.progress.counters[item.index] = dict(commit.counters)
                kept.append(item)
            else:
                left.append(item)
                if self.record_limit is not None:  # the last run's, if any: redone now
                    _remove_errors(self.job, item)
        print(
            f"resumed: {len(items) - len(left)} of {len(items)} work items have their output "
            f"already ({len(kept)} of them as kept range parts)",
            file=sys.stderr,
            flush=True,
        )
        for last in self.ranged.kept(kept):  # objects whose every range was kept
            self._publish(last)
        self.progress.kept_parts = self.ranged.unpublished()
        return left

    def _range_bytes(self) -> int:
        """The range size for this job's objects; 0 where its data cannot run as ranges."""
        if not rangeable(self.job.split_type, self.job.compression):
            return 0
        return range_size(self.job.environment)

    def _list_inputs(self) -> list[ObjectInfo]:
        """S3Prefix: every object under the prefix. ManifestFile: the objects it lists."""
        if self.job.data_type == "ManifestFile":
            return manifests.list_manifest(self.job.input_uri)
        return objects.list_prefix(self.job.input_uri)

    def _on_queued(self, place: dict[str, Any] | None) -> None:
        """The job's place in the queue while it waits (None once admitted), for Describe;
        saved when it changes only, since many jobs may wait at once."""
        if place != self.progress.queued:
            self.progress.queued = place
            self._save(force=True)

    def _on_event(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.kind.value}", None)
        if handler is not None:
            handler(event)
        # A launch comes as the executor starts each instance: a save there would open the
        # store (loading the database layer) before the instances start, not beside them.
        if event.kind is not EventKind.INSTANCE_LAUNCHED:
            self._save()

    def _on_ready(self, event: Event) -> None:
        if self.record.start_time is None:
            self.record = _with(self.record, start_time=time.time())
            self.store.update_job(self.record.name, start_time=self.record.start_time)

    def _on_start_failed(self, event: Event) -> None:
        if self.progress.start_failure is None:  # the first cause; the others follow from it
            self.progress.start_failure = _categorised(str(event.detail))
        self._stopping = True  # a model that does not start on one instance will not on others

    def _on_item_started(self, event: Event) -> None:
        self.in_flight[event.item.index] = event.item
        self.started_at[event.item.index] = time.time()
        self.holders[event.item.index] = event.instance

    def _on_item_progress(self, event: Event) -> None:
        counters = dict(event.detail)
        latency = counters.pop("latency", None)
        if latency is not None:
            self.progress.latencies[event.item.index] = latency
        self.progress.counters[event.item.index] = counters

    def _on_instance_launched(self, event: Event) -> None:
        self.lifetimes.launch(event.instance)

    def _on_instance_ended(self, event: Event) -> None:
        self.lifetimes.end(event.instance)

    def _on_instance_sample(self, event: Event) -> None:
        self.samples.instance_sample(event.instance, event.detail)

    def _on_item_done(self, event: Event) -> None:
        result: ItemResult = event.detail
        self.in_flight.pop(event.item.index, None)
        self.progress.counters[event.item.index] = {n: getattr(result, n) for n in _COUNTERS}
        if result.latency is not None:
            self.progress.latencies[event.item.index] = result.latency
        if event.item.ranged:
            self._range_done(event.item, result.ok, result.reason, result.output_stamp)
            return
        if result.ok:
            self.progress.objects_completed += 1
            self.completed.append(event.item)
            if result.output_stamp is not None:
                self._committed(event.item, result.output_stamp)
        else:
            self._item_failed(event.item, result.reason or "failed")

    def _on_item_lost(self, event: Event) -> None:
        self.in_flight.pop(event.item.index, None)
        _sweep(part_url(event.item))
        if event.item.ranged:
            self._range_done(event.item, False, f"{event.item.label}: {event.detail}")
            return
        self._item_failed(event.item, f"{event.item.display}: {event.detail}")

    def _on_instance_lost(self, event: Event) -> None:
        print(f"instance {event.instance}: {event.detail}", file=sys.stderr, flush=True)
        if event.item is not None:
            self.in_flight.pop(event.item.index, None)
            _sweep(part_url(event.item))

    def _settle_in_flight(self) -> None:
        """Items still under way when the run ended (a stop): an output that was committed
        in the last moments, its "done" never read, counts as completed, since it is there
        and whole; whatever else a killed writer left is removed."""
        for index, item in self.in_flight.items():
            written = objects.modified_time(part_url(item))
            if written is None or written < self.started_at[index] - _CLOCK_SLACK_SECONDS:
                pass
            elif item.ranged:
                self._range_done(item, True, None, _stamp(part_url(item)))
            else:
                self.progress.objects_completed += 1
                self.completed.append(item)
                self._committed(item, _stamp(item.output_url))
            _sweep(part_url(item))
        self.in_flight.clear()

    def _committed(
        self, item: WorkItem, stamp: str | None, counters: dict[str, int] | None = None
    ) -> None:
        """Note an item's committed output, saved with the next progress save."""
        if stamp is None:
            return
        if counters is None:
            counters = self.progress.counters.get(item.index, {})
        self.commits.append(
            CommitRecord(self.record.name, item.key, part_url(item), stamp, counters, time.time())
        )

    def _range_done(
        self, item: WorkItem, ok: bool, reason: str | None, stamp: str | None = None
    ) -> None:
        """A range ended: its object fails with its first failed range (once), and is
        published when its last part is written. A written part is committed as any
        output, so that a resumed job keeps it if its object is not published now."""
        if not ok:
            if self.ranged.fail(item):
                self._item_failed(item, reason or f"{item.label}: failed")
        else:
            self._committed(item, stamp)
            if self.ranged.part_written(item):
                self._publish(item)
        self.progress.kept_parts = self.ranged.unpublished()

    def _publish(self, item: WorkItem) -> None:
        """Put the object of ``item``, its last range in, together from its parts."""
        try:
            self.ranged.publish(item)
        except StorageError as exc:
            self._item_failed(item, f"{item.display}: {exc}")
            return
        print(f"{item.display}: assembled from {item.parts} ranges", file=sys.stderr, flush=True)
        self.progress.objects_completed += 1
        self.completed.append(whole_item(item))
        self._object_published(item)

    def _object_published(self, item: WorkItem) -> None:
        """A ranged object's output is whole: its ranges' errors files are joined into one
        (record errors on), and its commit is noted with the counters of all its ranges."""
        whole = whole_item(item)
        indexes = range(whole.index, whole.index + item.parts)
        counters = self.progress.counters
        totals = {n: sum(counters.get(i, {}).get(n, 0) for i in indexes) for n in _COUNTERS}
        if self.record_limit is not None:
            _join_errors(self.job, item)
        self._committed(whole, _stamp(item.output_url), totals)

    def _item_failed(self, item: WorkItem, reason: str) -> None:
        self.progress.objects_failed += 1
        self.progress.failed_objects.append(item.display)
        self.progress.reasons.append(reason)

    def _should_stop(self, save: bool = True) -> bool:
        """Whether a stop was asked for; each status poll also saves the progress (unless
        told not to), so the plan (ObjectsTotal) shows as soon as the instances are starting."""
        now = time.monotonic()
        if not self._stopping and now - self._last_poll >= _STATUS_POLL_SECONDS:
            self._last_poll = now
            if save:
                self._save()
            current = self.store.get_job(self.record.name)
            self._stopping = current is None or current.status == JobStatus.STOPPING.value
        return self._stopping

    def _finish(self, finished: bool) -> None:
        progress = self.progress
        if progress.start_failure is not None:
            self._end(JobStatus.FAILED, progress.start_failure)
        elif not finished:
            self._end(JobStatus.STOPPED)
        elif progress.objects_failed or progress.objects_completed < progress.objects_total:
            self._end(JobStatus.FAILED, self._failure_summary())
        elif excess := self._failed_records_excess():
            self._end(JobStatus.FAILED, f"ClientError: {excess}. See the errors files.")
        else:
            self._end(JobStatus.COMPLETED)

    def _failed_records_excess(self) -> str | None:
        """Why the job fails for its failed records (record errors on), else None."""
        if self.record_limit is None:
            return None
        totals = self.progress.as_record()
        return self.record_limit.describe_excess(totals["failed_records"], totals["records"])

    def _failure_summary(self) -> str:
        progress = self.progress
        not_run = progress.objects_total - progress.objects_completed - progress.objects_failed
        parts = [f"{progress.objects_failed} of {progress.objects_total} input objects failed"]
        if not_run:
            parts.append(f"{not_run} were not processed (no instance left)")
        first = progress.reasons[0] if progress.reasons else ""
        # An item's reason is the user's (data, model, storage) unless our own code failed.
        category = "InternalServerError" if f" {_INTERNAL}:" in first else "ClientError"
        first = first.replace(f" {_INTERNAL}: ", " ", 1)
        return f"{category}: {'; '.join(parts)}. First failure: {first}. See the job's data-log."

    def _end(self, status: JobStatus, reason: str | None = None) -> None:
        self.lifetimes.end_all()  # the executor has ended every instance by now
        self._save(force=True)
        fields = {"failure_reason": one_line(reason)} if reason else {}
        if not transition(self.store, self.record.name, status, **fields):
            # A stop request won the race: honour it.
            transition(self.store, self.record.name, JobStatus.STOPPED)

    def _save(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_save >= _PROGRESS_SAVE_SECONDS:
            self._last_save = now
            record = self._progress_record()
            self.store.update_job(self.record.name, progress=record)
            commits, self.commits = self.commits, []
            self.store.record_commits(commits)
            self.samples.whole_job(record, force)
            self.store.add_samples(self.samples.take())

    def _progress_record(self) -> dict[str, Any]:
        """The progress to save: the counts, the instance-seconds so far, the work under way."""
        in_flight = [
            {
                "object": item.display,
                "instance": instance_name(self.holders.get(index, 0)),
                "records": self.progress.counters.get(index, {}).get("records", 0),
                "bytes_in": self.progress.counters.get(index, {}).get("bytes_in", 0),
                "started": self.started_at.get(index, 0.0),
            }
            for index, item in self.in_flight.items()
        ]
        instance_seconds = self.lifetimes.as_record()
        return {
            **self.progress.as_record(),
            "instance_seconds": instance_seconds,
            "in_flight": in_flight,
        }


def _sweep(output_url: str) -> None:
    """Remove what a killed writer of ``output_url`` left (a temporary file, an open
    multipart upload). A sweep that fails is noted in the controller's log, not raised: the
    job's outcome does not depend on it, and an upload left open is for the bucket's
    lifecycle rule."""
    try:
        objects.remove_partials(output_url)
    except StorageError as exc:
        print(f"could not clean up after {output_url}: {exc}", file=sys.stderr, flush=True)


def _sweep_kept_parts(store: Store) -> None:
    """Remove the parts other jobs kept past their time; logged, not raised: this job has
    ended already."""
    try:
        swept = sweep_kept_parts(store)
    except Exception as exc:  # the store or a setting: the next job to end tries again
        print(f"could not sweep kept range parts: {exc}", file=sys.stderr, flush=True)
        return
    if swept:
        print(f"removed the kept range parts of {', '.join(swept)}", file=sys.stderr, flush=True)


def _join_errors(job: TransformJobSpec, item: WorkItem) -> None:
    """Join the errors files a ranged object's ranges wrote, in range order (so in record
    order), into the object's one errors file. A failure is logged: the output stands."""
    url = errors_url(job.output_path, item.output_url, job.environment)
    try:
        parts = [errors_part_url(url, part, item.parts) for part in range(1, item.parts + 1)]
        written = [part for part in parts if objects.exists(part)]
        if written:
            objects.concatenate(url, written)
    except (StorageError, FileNotFoundError) as exc:
        print(f"could not join the errors files of {url}: {exc}", file=sys.stderr, flush=True)


def _unchanged(commit: CommitRecord | None, item: WorkItem) -> CommitRecord | None:
    """``commit`` if it is the item's and its output (a range's: its part) is still there as
    committed, with no failed records (they may pass now); else None: the item runs."""
    url = part_url(item)
    if commit is None or commit.output_url != url or commit.counters.get("failed_records", 0):
        return None
    return commit if _stamp(url) == commit.stamp else None


def _remove_errors(job: TransformJobSpec, item: WorkItem) -> None:
    """Remove the errors file an earlier run left for work that runs again (a range's
    errors part; for an object's first range its joined file too), so that the file, if
    any, is this run's. A failure is logged: at worst a stale file stays."""
    url = errors_url(job.output_path, item.output_url, job.environment)
    urls = [url] if item.part == 1 else []
    if item.ranged:
        urls.append(errors_part_url(url, item.part, item.parts))
    for url in urls:
        _delete(url)


def _delete(url: str) -> None:
    try:
        objects.delete(url)
    except StorageError as exc:
        print(f"could not remove {url}: {exc}", file=sys.stderr, flush=True)


def _stamp(output_url: str) -> str | None:
    """The output's stamp, for resume; None (the item is redone then) if it cannot be read."""
    try:
        return objects.stamp(output_url)
    except StorageError as exc:
        print(f"could not read {output_url}: {exc}", file=sys.stderr, flush=True)
        return None


def _categorised(reason: str) -> str:
    """A start failure's reason with SageMaker's category in front: the user's model
    (``ClientError``) unless our own code broke, which shows as a bare exception name."""
    if reason.startswith(("ClientError:", f"{_INTERNAL}:")):
        return reason
    if re.match(r"(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception): ", reason):
        return f"{_INTERNAL}: {reason}"
    return f"ClientError: {reason}"


def _with(record: JobRecord, **changes: Any) -> JobRecord:
    return JobRecord(**{**vars(record), **changes})


def run_job(
    job_name: str,
    executor: Executor | None = None,
    store: Store | None = None,
    handed_over: JobRecord | None = None,
) -> None:
    """Run job ``job_name`` to its end in this process (the controller's body).

    ``handed_over`` is the job's record as its creator stored it, when the creator passes
    it along (``launch_detached`` does): the instances then start before the store is even
    opened. Otherwise the record is read from the store first.
    """
    record = handed_over
    if record is None:
        store = store or open_store()
        record = _claim(store, job_name)
        if record is None:
            return
    given = store
    JobRun(
        lambda: given if given is not None else open_store(),
        record,
        executor or create_executor(),  # BATCHTRANSFORM_EXECUTOR
    ).run()


def _claim(store: Store, job_name: str) -> JobRecord | None:
    """The job's record, with this process recorded as its controller; None when there is
    nothing left to run (the job ended, or was stopped before it started)."""
    record = store.get_job(job_name)
    if record is None:
        raise LookupError(f"no transform job named {job_name!r}")
    if JobStatus(record.status).terminal:
        return None
    store.update_job(job_name, controller_pid=os.getpid(), controller_host=config.host_name())
    if record.status == JobStatus.STOPPING.value:
        transition(store, job_name, JobStatus.STOPPED)
        return None
    return record


def launch_detached(record: JobRecord) -> int:
    """Start the job's controller in a process of its own that outlives this one.

    Returns its process id as soon as the process exists. The record goes to the
    controller on its standard input, so that it can start the instances before it loads
    the database layer. It runs in its own session, so the caller's terminal signals do not
    reach it; a daemon thread waits for it, so that a long-running caller (the HTTP server)
    never collects zombies. The program is given with ``-c`` so that the instances it
    spawns do not re-import it as their main module.
    """
    log = (config.job_dir(record.name) / "controller.log").open("ab")
    env = {**os.environ, "BATCHTRANSFORM_HOME": str(config.home())}
    program = "import sys; from batchtransform.controller import main; main(sys.argv[1:])"
    enqueue(record.name, record.creation_time)  # in this machine's line, in creation order
    try:
        with log:
            process = subprocess.Popen(
                [sys.executable, "-c", program, record.name, "--record-on-stdin"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
    except OSError:
        withdraw(record.name, record.creation_time)
        raise
    assert process.stdin is not None
    # A broken pipe means the controller died already: the service sees that by its pid.
    with process.stdin, contextlib.suppress(BrokenPipeError):
        process.stdin.write(json.dumps(dataclasses.asdict(record)).encode())
    threading.Thread(target=process.wait, name=f"reap-{record.name}", daemon=True).start()
    return process.pid


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m batchtransform.controller")
    parser.add_argument("job_name", help="the transform job to run to its end")
    parser.add_argument(
        "--record-on-stdin",
        action="store_true",
        help="read the job's record from standard input instead of the store",
    )
    args = parser.parse_args(argv)
    handed_over = JobRecord(**json.load(sys.stdin)) if args.record_on_stdin else None
    run_job(args.job_name, handed_over=handed_over)


if __name__ == "__main__":
    main()
