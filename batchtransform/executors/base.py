"""The executor contract: run a function on work items in N instances.

An executor knows nothing of data or models. It starts instances, each of which builds one
worker from a picklable factory, hands work items to whichever instance is free, reports
what happens as events, and shuts every instance down at the end, also on failure and stop.
The local executor runs instances as processes on this machine; a Ray executor will run
them as actors on a cluster with the same events.
"""

from __future__ import annotations

import abc
import enum
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol


class Report(Protocol):
    """What a worker gets with each item: a way to send live progress, and a way out."""

    def __call__(self, detail: dict[str, Any]) -> None:
        """Send live progress to the controller."""

    def abandon(self, reason: str, attempts: int | None = None) -> NoReturn:
        """End this instance at once, from any thread: for a worker that is stuck or can no
        longer serve. The executor reports ``reason``, replaces the instance and runs the
        item again elsewhere, unless it has had ``attempts`` tries already (None: the
        executor's own limit). Partial outputs are swept by the controller."""


# The thread pools of numeric libraries (OpenMP, OpenBLAS, MKL), sized once, when the
# library loads. An executor sets them for the instances that share a machine's cores.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# How long an idle OpenBLAS thread spins before it sleeps, as 2**N cycles: also read once.
SPIN_VARIABLE = "OPENBLAS_THREAD_TIMEOUT"
# OpenBLAS threads spin for 2**28 cycles (about 0.1 s) after every call by default, and
# took the core that the read-ahead thread and the model's own GIL-free work needed: a
# 1 GB job ran at 95 % of two cores in 11.1-11.7 s, and in 10.1-10.3 s at 60 % with spins
# of 2**20 cycles (well under a millisecond), which keeps back-to-back calls as fast.
OPENBLAS_SPIN = "20"
# An item whose instance dies runs again elsewhere, up to this many tries in all. A death
# is not always the file's doing (an instance killed from outside, a machine's memory
# pressure), so one unlucky retry does not charge the file; three deaths in a row do.
MAX_ATTEMPTS = 3
# Small objects an instance holds beyond the one it works on: it fetches their inputs and
# commits their outputs meanwhile, and never waits on the executor between them. An
# object's result comes back once its output is uploaded, so the objects held cover the
# reads and the uploads under way together: 1,000 small objects on S3 ran 3-8 % faster
# with 7 than with 3, in four runs out of four.
SMALL_AHEAD = 7


class Worker(Protocol):
    """What runs inside one instance: started once, given items one at a time, stopped once."""

    def start(self) -> None: ...

    def process(self, item: Any, report: Report) -> Any:
        """Do one item and return a picklable result. ``report`` sends live progress.

        A worker that cannot go on (its model is gone for good) raises
        ``errors.InstanceLostError``: the item then runs elsewhere, as when an instance dies.
        """
        ...

    def stop(self) -> None: ...


WorkerFactory = Callable[[int], Worker]


class EventKind(str, enum.Enum):
    READY = "ready"  # an instance started its worker
    START_FAILED = "start_failed"  # an instance's worker could not start (detail = reason)
    ITEM_STARTED = "item_started"
    ITEM_PROGRESS = "item_progress"  # detail = what the worker reported
    ITEM_DONE = "item_done"  # detail = the worker's result
    ITEM_LOST = "item_lost"  # the instance died with the item and it will not be retried
    INSTANCE_LOST = "instance_lost"  # an instance died (item = what it held, detail = reason)
    # Telemetry: when each instance costs (launch to gone) and what it uses meanwhile.
    INSTANCE_LAUNCHED = "instance_launched"  # an instance is being started (before READY)
    INSTANCE_ENDED = "instance_ended"  # an instance is gone, whichever way it ended
    # detail = {"time": epoch, "cpu_percent", "memory_percent", "memory_bytes"}, measured
    # in the instance (``executors.sampling``) about every ``telemetry.SAMPLE_SECONDS``
    INSTANCE_SAMPLE = "instance_sample"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    instance: int
    item: Any = None
    detail: Any = None


class Executor(abc.ABC):
    """Runs work items on instances until all are done, or ``should_stop`` says so."""

    @abc.abstractmethod
    def run(
        self,
        items: Sequence[Any],
        factory: WorkerFactory,
        instance_count: int,
        on_event: Callable[[Event], None],
        should_stop: Callable[[], bool],
    ) -> bool:
        """Process every item; return False if stopped early (instances are gone either way).

        Each instance death is reported once (INSTANCE_LOST), whichever way it is noticed,
        and the instance is replaced while the replacement budget lasts. The item it held
        runs again on another instance, up to the executor's attempt limit, then is
        reported ITEM_LOST. A START_FAILED instance is not replaced; when no instance is
        left the remaining items are not run and ``run`` returns.

        Every instance started is reported INSTANCE_LAUNCHED as it is started and
        INSTANCE_ENDED once it is gone (a clean exit, a death, a stop), before ``run``
        returns; while it lives, it reports INSTANCE_SAMPLE with its process tree's CPU
        and memory (``sampling.InstanceSampler``, run inside the instance).
        """


def retry_or_lose(
    pending: deque[tuple[Any, int]], item: Any, tries: int, allowed: int | None, reason: str
) -> str | None:
    """After an item's ``tries``-th try ended with its instance: put it back at the head of
    ``pending`` for another instance and return None, or, when it has had the tries it may
    have (``allowed``, None for ``MAX_ATTEMPTS``, never more), the ITEM_LOST detail."""
    limit = MAX_ATTEMPTS if allowed is None else max(1, min(allowed, MAX_ATTEMPTS))
    if tries < limit:
        pending.appendleft((item, tries))
        return None
    said = "once" if tries == 1 else f"{tries} times"
    return f"{reason} (tried {said})"


def small(*items: Any) -> bool:
    """Whether the items say they are small enough to be handed out one behind another
    (``plan.WorkItem.small``); items that do not say are not."""
    return all(getattr(item, "small", False) for item in items)
