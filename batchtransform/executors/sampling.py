"""CPU and memory of one instance, measured inside it, for both executors.

An instance's work is its own process and whatever that starts (a model server and its
workers), so the sampler measures the process tree rooted at the instance: CPU as
CloudWatch's CPUUtilization counts it (percent of one core: 200 is two cores busy), from
the tree's CPU time between two samples; memory as the tree's resident set, and as a
percent of the instance's memory limit (the smallest of its type's memory, its cgroup's
limit and the machine's memory).

It runs in the instance, not in the executor, because a Ray actor may be on another
machine: the executor only carries the values (``EventKind.INSTANCE_SAMPLE``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from batchtransform.errors import BatchTransformError
from batchtransform.telemetry import SAMPLE_SECONDS

__all__ = ["InstanceSampler", "memory_limit"]

_FIRST_SAMPLE_SECONDS = 1.0
_CGROUP_MEMORY_MAX = Path("/sys/fs/cgroup/memory.max")  # cgroup v2, as seen from inside


class InstanceSampler:
    """A daemon thread that calls ``send`` with ``{"time", "cpu_percent", "memory_percent",
    "memory_bytes"}`` every ``interval`` seconds, for the tree of process ``pid``; it ends
    when ``send`` raises (the executor is gone) or when ``stop`` is called."""

    def __init__(
        self,
        send: Callable[[dict[str, float]], None],
        limit_bytes: int,
        pid: int | None = None,
        interval: float = SAMPLE_SECONDS,
    ) -> None:
        self.send, self.limit_bytes, self.interval = send, limit_bytes, interval
        self.root = psutil.Process(pid)
        self._cpu: dict[psutil.Process, float] = {}  # CPU seconds at the last sample
        self._last = time.monotonic()
        self._stopped = threading.Event()
        self.sample()  # the baseline: CPU counts from here
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> InstanceSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        wait = min(_FIRST_SAMPLE_SECONDS, self.interval)  # a short job gets one too
        while not self._stopped.wait(wait):
            wait = self.interval
            try:
                self.send(self.sample())
            except Exception:  # the channel is closed: the instance is on its way out
                return

    def sample(self) -> dict[str, float]:
        """The tree's values since the last call (CPU) and now (memory)."""
        now = time.monotonic()
        elapsed, self._last = max(now - self._last, 1e-6), now
        busy, resident, seen = 0.0, 0, {}
        for process in _tree(self.root):
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    rss = process.memory_info().rss
            except psutil.Error:  # it ended in the meantime
                continue
            used = times.user + times.system
            busy += used - self._cpu.get(process, 0.0)  # a new process: all of its time
            resident += rss
            seen[process] = used
        self._cpu = seen
        return {
            "time": time.time(),
            "cpu_percent": round(max(busy, 0.0) / elapsed * 100.0, 2),
            "memory_percent": round(resident / self.limit_bytes * 100.0, 3),
            "memory_bytes": float(resident),
        }


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [root]


def memory_limit(factory: Any = None) -> int:
    """The instance's memory in bytes: the smallest of its type's (the factory's
    ``instance_resources``, when it has one and the type is known), this process's
    cgroup limit, and the machine's memory."""
    limits: list[int] = [int(psutil.virtual_memory().total)]
    try:
        text = _CGROUP_MEMORY_MAX.read_text().strip()
        if text.isdigit():
            limits.append(int(text))
    except OSError:
        pass
    resources = getattr(factory, "instance_resources", None)
    try:
        size = resources() if callable(resources) else None
    except BatchTransformError:  # a bad setting fails the job elsewhere, not the sampler
        size = None
    if size is not None and size.memory_mib > 0:
        limits.append(size.memory_mib * 1024 * 1024)
    return min(limits)
