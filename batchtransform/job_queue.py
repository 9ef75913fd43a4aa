"""A job's turn on this machine: the controller's side of the queue in ``admission``.

The controller takes its job's ticket as it starts (before listing the input, so jobs
keep their creation order), works out what the job will hold (``admission.place``: the
instance cap, the GPUs of its instance type), waits for its turn while telling the user
its place, and hands the executor each instance's GPUs. Only the local executor shares
this machine's slots; another executor (Ray) places its instances itself, so its jobs
leave the queue at once.

What the user is told goes to Describe's ``Progress`` (``Queued`` while the job waits) and
to a data-log stream of the job's own, ``<job>/controller-<epoch>/data-log``, which exists
only when there is something to say: a wait in the queue, fewer instances than asked for,
GPUs assigned, or a GPU type running on CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchtransform import logs
from batchtransform.admission import AdmissionQueue, Grant, Ticket, max_instances, place
from batchtransform.executors import Executor, LocalExecutor
from batchtransform.gpus import VISIBLE_DEVICES, gpu_demand, machine_gpus
from batchtransform.instance_types import LOCAL, resources_for
from batchtransform.shapes import TransformJobSpec

__all__ = ["Admitted", "Turn", "enqueue", "withdraw"]

STREAM_PREFIX = "controller"


@dataclass
class Admitted:
    """The job's go-ahead: the executor to run it with (each instance's GPUs set), how
    many instances, and the slots held until the instances are gone."""

    executor: Executor
    instances: int
    grant: Grant | None = None

    def __enter__(self) -> Admitted:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.grant is not None:
            self.grant.release()


class Turn:
    """One job's place on this machine, from its controller's start to its end."""

    def __init__(self, job: TransformJobSpec, executor: Executor) -> None:
        self.job, self.executor = job, executor
        self.queue = AdmissionQueue()
        self.ticket: Ticket | None = None
        if isinstance(executor, LocalExecutor):
            self.ticket = self.queue.join(job.name, job.creation_time)
        else:
            self.queue.withdraw(job.name, job.creation_time)
        self._log: logs.DataLog | None = None
        self._position: int | None = None

    def admit(
        self,
        wanted: int,
        should_stop: Callable[[], bool],
        on_queued: Callable[[dict[str, Any] | None], None],
    ) -> Admitted | None:
        """Wait for the job's turn; None if it was stopped first. ``on_queued`` gets the
        job's place while it waits (``{"position": 2, "reason": ...}``), then None."""
        if self.ticket is None:
            return Admitted(self.executor, wanted)
        demand = gpu_demand(self.job.instance_type, self.job.environment)
        machine = machine_gpus() if demand is not None and demand.per_instance else ()
        placement = place(wanted, max_instances(), demand, machine)
        self._note_unknown_type()
        for note in placement.notes:
            self._note(note)

        def waiting(position: int, reason: str) -> None:
            self._waiting(position, reason)
            on_queued({"position": position, "reason": reason})

        grant = self.queue.admit(self.ticket, placement, should_stop, waiting)
        if grant is None:
            self._note("Stopped while queued: no instance was started")
            return None
        if self._position is not None:
            self._note(f"Admitted after {grant.waited_seconds:.1f} s in the queue")
            on_queued(None)
        if placement.demand is None or not isinstance(self.executor, LocalExecutor):
            return Admitted(self.executor, placement.instances, grant)
        environments = placement.demand.environments(placement.instances, grant.gpus)
        self._note_gpus(environments)
        return Admitted(self.executor.placed(environments), placement.instances, grant)

    def close(self) -> None:
        if self.ticket is not None:
            self.ticket.leave()
        if self._log is not None:
            self._log.close()

    def _waiting(self, position: int, reason: str) -> None:
        if self._position is None:
            self._note(
                f"Queued: position {position} on this machine ({reason}); the job starts "
                "when its turn comes"
            )
        elif position != self._position:
            self._note(f"Queue position {position} ({reason})")
        self._position = position

    def _note_gpus(self, environments: list[dict[str, str]]) -> None:
        given = [env[VISIBLE_DEVICES] for env in environments]
        if any(given):
            each = ", ".join(f"instance {n + 1}: {ids}" for n, ids in enumerate(given))
            self._note(
                f"GPUs ({VISIBLE_DEVICES}) by instance: {each}; a replacement takes the GPUs "
                "of the instance it replaces"
            )

    def _note_unknown_type(self) -> None:
        kind = self.job.instance_type
        if kind != LOCAL and resources_for(kind) is None:
            self._note(
                f"InstanceType {kind} is not in the instance type table: its instances get "
                "no GPUs (a table of your own can add it: BATCHTRANSFORM_INSTANCE_TYPES)"
            )

    def _note(self, message: str) -> None:
        if self._log is None:
            folder = logs.logs_dir(self.job.name)
            name = f"{STREAM_PREFIX}-{int(time.time())}{logs.DATA_LOG_SUFFIX}"
            self._log = logs.DataLog(folder / name)
        self._log.write(message)


def enqueue(job_name: str, creation_time: float) -> None:
    """Put a job in this machine's line as its controller is launched (see ``admission``)."""
    AdmissionQueue().enqueue(job_name, creation_time)


def withdraw(job_name: str, creation_time: float) -> None:
    """Take a job out of line: its controller could not be started."""
    AdmissionQueue().withdraw(job_name, creation_time)
