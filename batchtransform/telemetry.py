"""A job's telemetry: how its model calls went, how long its instances lived, and samples
over time for charts and metrics.

Three parts, each where its numbers are known:

* In the instance, the worker counts one item's model calls in ``InvocationStats``:
  latency in a histogram with fixed bounds (Prometheus ``le`` buckets), retries, runtime
  restarts. The counts travel with the item's counters (progress reports and
  ``ItemResult``), so the controller adds them up across items and instances as it adds
  records. An observation costs two clock reads, a bisection and a lock (about 0.6 µs),
  against a model call of a whole mini-batch.
* In the controller, ``InstanceLifetimes`` adds up instance-seconds from the executor's
  launch and end events (``executors.base``), and ``SampleBuffer`` collects the whole
  job's counts every ``SAMPLE_SECONDS`` and the instances' CPU and memory samples, saved
  with the next progress save (``Store.add_samples``): nothing waits on the store.
* CPU and memory are measured in each instance (``executors.sampling``), which both
  executors run, so that a Ray actor on another machine is measured where it runs.

This module stays light: the controller imports it.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchtransform.store.base import SampleRecord

__all__ = [
    "LATENCY_BUCKETS",
    "SAMPLE_SECONDS",
    "InstanceLifetimes",
    "InvocationStats",
    "Latency",
    "SampleBuffer",
    "instance_name",
]

# Upper bounds (seconds) of the latency buckets: a model call of a mini-batch takes from
# a millisecond (a small in-process handler) to a minute (a large model on a CPU).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SAMPLE_SECONDS = 2.0  # how often the whole job and each instance are sampled


def instance_name(index: int) -> str:
    """An instance's name in samples and progress: its log streams' prefix (``logs``)."""
    return f"instance-{index}"


@dataclass
class Latency:
    """A latency histogram: ``counts`` per bucket of ``LATENCY_BUCKETS`` (not cumulative;
    the last counts calls over the largest bound), ``total`` their sum in seconds."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def add(self, other: Latency) -> None:
        pairs = zip(self.counts, other.counts, strict=True)
        self.counts = [mine + theirs for mine, theirs in pairs]
        self.total += other.total

    def as_record(self) -> dict[str, Any]:
        """Prometheus's shape: cumulative counts per upper bound, the last for +Inf."""
        cumulative, running = [], 0
        for count in self.counts:
            running += count
            cumulative.append(running)
        return {
            "buckets": list(LATENCY_BUCKETS),
            "counts": cumulative,
            "sum": self.total,
            "count": running,
        }

    @classmethod
    def merged(cls, histograms: Iterable[Latency]) -> Latency:
        merged = cls()
        for histogram in histograms:
            merged.add(histogram)
        return merged


class InvocationStats:
    """One item's model calls, counted from every thread that calls the model at once
    (MaxConcurrentTransforms), hence the lock."""

    def __init__(self) -> None:
        self.latency = Latency()
        self.retries = 0
        self.restarts = 0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        """One call took ``seconds`` (answered or not)."""
        slot = bisect_left(LATENCY_BUCKETS, seconds)  # a bound's bucket holds calls <= it
        with self._lock:
            self.latency.counts[slot] += 1
            self.latency.total += seconds

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def counters(self) -> dict[str, Any]:
        """A copy to send along with the item's other counters."""
        with self._lock:
            latency = Latency(list(self.latency.counts), self.latency.total)
            return {"retries": self.retries, "restarts": self.restarts, "latency": latency}


class InstanceLifetimes:
    """Instance-seconds of one job: each instance from its launch to its end, those still
    running up to now, plus what earlier runs of the job (before a resume) used."""

    def __init__(self, instance_type: str, earlier: Mapping[str, float] | None = None) -> None:
        self.instance_type = instance_type
        self.earlier = dict(earlier or {})
        self.launched: dict[int, float] = {}
        self.ended: dict[int, float] = {}

    def launch(self, instance: int) -> None:
        self.launched.setdefault(instance, time.time())

    def end(self, instance: int) -> None:
        if instance in self.launched:
            self.ended.setdefault(instance, time.time())

    def end_all(self) -> None:
        """The run is over: whatever was not reported ended is gone now."""
        for instance in self.launched:
            self.end(instance)

    def as_record(self) -> dict[str, float]:
        now = time.time()
        spent = sum(self.ended.get(i, now) - start for i, start in self.launched.items())
        totals = dict(self.earlier)
        if self.launched:
            totals[self.instance_type] = totals.get(self.instance_type, 0.0) + spent
        return totals


class SampleBuffer:
    """Samples of one job waiting for the next progress save."""

    def __init__(self, job_name: str) -> None:
        self.job_name = job_name
        self.pending: list[SampleRecord] = []
        self._last_whole = 0.0  # monotonic time of the last whole-job sample

    def instance_sample(self, instance: int, detail: Mapping[str, Any]) -> None:
        """An instance's sample as its executor reported it: ``time`` and the values."""
        values = {k: float(v) for k, v in detail.items() if k != "time"}
        when = float(detail.get("time", time.time()))
        self.pending.append(SampleRecord(self.job_name, when, instance_name(instance), values))

    def whole_job(self, totals: Mapping[str, Any], force: bool = False) -> None:
        """The job's cumulative counts, when ``SAMPLE_SECONDS`` have passed (or ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_whole < SAMPLE_SECONDS:
            return
        self._last_whole = now
        names = ("records", "bytes_in", "bytes_out", "objects_completed", "failed_records")
        values = {name: float(totals.get(name, 0)) for name in names}
        self.pending.append(SampleRecord(self.job_name, time.time(), "", values))

    def take(self) -> list[SampleRecord]:
        taken, self.pending = self.pending, []
        return taken
