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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Report = Callable[[dict[str, Any]], None]

# The thread pools of numeric libraries (OpenMP, OpenBLAS, MKL), sized once, when the
# library loads. An executor sets them for the instances that share a machine's cores.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# How long an idle OpenBLAS thread spins before it sleeps, as 2**N cycles: also read once.
SPIN_VARIABLE = "OPENBLAS_THREAD_TIMEOUT"


class Worker(Protocol):
    """What runs inside one instance: started once, given items one at a time, stopped once."""

    def start(self) -> None: ...

    def process(self, item: Any, report: Report) -> Any:
        """Do one item and return a picklable result. ``report`` sends live progress."""
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

        An item whose instance dies is retried once on another instance, then reported
        ITEM_LOST. A START_FAILED instance is not replaced; when no instance is left the
        remaining items are not run and ``run`` returns.
        """
