"""The job queue of one machine: at most ``BATCHTRANSFORM_MAX_INSTANCES`` instances run at
once across all jobs, and jobs beyond that wait their turn in creation order.

Each job has its own controller process, so the queue lives in files under
``$BATCHTRANSFORM_HOME/admission/``, held with ``flock``, which the kernel releases when
its holder dies however it dies; a SIGKILLed controller's places come back with no one
cleaning up::

    admission/lock              held while a controller decides (a few milliseconds)
    admission/queue/<key>-<job> a ticket per waiting job, ordered by creation time
    admission/slots/<n>         one per instance slot, 0 .. cap-1, locked by its holder
    admission/gpus/<id>         one per GPU of the machine, locked by the job holding it

The service writes a job's ticket when it launches the controller (so a job created first
is ahead even if its controller starts later), and the controller locks it and writes its
process id there. A ticket that nobody locks is dead when it names a process (that
controller is gone) or when it is older than ``START_GRACE_SECONDS`` (its controller never
came); the next controller to look removes it.

Only the ticket at the head is admitted, once the slots (and GPUs) it needs are all free:
strictly first come, first served, so a large job is never passed over for ever by small
ones. A job asking for more instances than the cap runs with the cap's number, and one
whose instances need more GPUs than the machine has runs with as many as fit (see
:func:`place`): either would wait for ever otherwise. A job's slots are held until its
executor has ended every instance.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batchtransform import config
from batchtransform.errors import ValidationError
from batchtransform.gpus import GpuDemand, describe_machine

__all__ = [
    "MAX_INSTANCES_VARIABLE",
    "START_GRACE_SECONDS",
    "AdmissionQueue",
    "Grant",
    "Placement",
    "Ticket",
    "default_max_instances",
    "max_instances",
    "place",
]

MAX_INSTANCES_VARIABLE = "BATCHTRANSFORM_MAX_INSTANCES"
START_GRACE_SECONDS = 60.0
# The head of the line looks often, so that freed slots are taken at once; the others only
# learn their new place, which changes when the head is admitted.
HEAD_POLL_SECONDS = 0.05
POLL_SECONDS = 0.5
_GIB = 1024**3


def max_instances() -> int:
    """The machine's cap: ``BATCHTRANSFORM_MAX_INSTANCES``, else :func:`default_max_instances`."""
    value = os.environ.get(MAX_INSTANCES_VARIABLE, "").strip()
    if not value:
        return default_max_instances()
    if not value.isdigit() or int(value) < 1:
        raise ValidationError(
            f"{MAX_INSTANCES_VARIABLE}={value!r} must be a whole number of instances, 1 or more",
            MAX_INSTANCES_VARIABLE,
        )
    return int(value)


def default_max_instances() -> int:
    """One instance per core this process may use, and at most one per GiB of memory."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // _GIB
    return max(1, min(cores or 1, memory))


@dataclass(frozen=True)
class Placement:
    """What a job will hold once admitted: ``instances`` of the machine's ``capacity``
    slots and ``gpus`` whole GPUs of ``machine_gpus``; ``demand`` is its GPU demand (None:
    GPUs left alone), ``notes`` what to tell the user."""

    instances: int
    capacity: int
    gpus: int = 0
    demand: GpuDemand | None = None
    notes: tuple[str, ...] = ()
    machine_gpus: tuple[str, ...] = ()


def place(
    wanted: int, cap: int, demand: GpuDemand | None, machine_gpus: Sequence[str]
) -> Placement:
    """How many instances and GPUs a job asking for ``wanted`` instances gets here.

    Raises ValidationError, naming what is missing, when not even one instance fits.
    """
    notes = []
    instances = wanted
    if wanted > cap:
        instances = cap
        notes.append(
            f"InstanceCount {wanted} is more than this machine runs at once "
            f"({MAX_INSTANCES_VARIABLE}={cap}): the job runs with {_instances(cap)}"
        )
    if demand is None or not demand.per_instance:
        return Placement(instances, cap, 0, demand, tuple(notes))
    if not machine_gpus:
        notes.append(
            f"{demand.source} asks for GPUs, and this machine has {describe_machine(())}: "
            "the instances run on CPU"
        )
        return Placement(instances, cap, 0, GpuDemand(0, demand.source), tuple(notes))
    fits = demand.instances_on(len(machine_gpus))
    if fits < 1:
        raise ValidationError(
            f"{demand.source} needs {demand.whole} GPUs for one instance, and this machine "
            f"has {describe_machine(machine_gpus)}: missing {demand.whole - len(machine_gpus)}",
            "TransformResources.InstanceType",
        )
    if instances > fits:
        notes.append(
            f"{instances} instances of {demand.source} need {demand.gpus_for(instances)} GPUs, "
            f"and this machine has {describe_machine(machine_gpus)}: the job runs with "
            f"{_instances(fits)}"
        )
        instances = fits
    gpus = demand.gpus_for(instances)
    return Placement(instances, cap, gpus, demand, tuple(notes), tuple(machine_gpus))


def _instances(count: int) -> str:
    return f"{count} instance{'' if count == 1 else 's'}"


@dataclass
class Grant:
    """The slots and GPUs a job holds, until ``release`` (or its process's end)."""

    slots: list[int]
    gpus: list[str]
    waited_seconds: float
    _files: list[int] = field(default_factory=list, repr=False)

    def release(self) -> None:
        files, self._files = self._files, []
        for fd in files:
            os.close(fd)  # closing drops the lock

    def __enter__(self) -> Grant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Ticket:
    """A job's place in the queue, locked by its controller until admitted or gone."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        while self._fd is None:  # a ticket removed between open and lock is made again
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    self._fd = fd
                    break
            os.close(fd)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def leave(self) -> None:
        """Out of the queue: admitted, or the job has ended."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave()


class AdmissionQueue:
    """The machine's queue and slots, under ``folder`` (by default
    ``$BATCHTRANSFORM_HOME/admission``)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or config.home() / "admission"
        for name in ("queue", "slots", "gpus"):
            (self.folder / name).mkdir(parents=True, exist_ok=True)

    def ticket_path(self, job_name: str, creation_time: float) -> Path:
        """A ticket's file; names sort by creation time, then job name."""
        return self.folder / "queue" / f"{round(creation_time * 1e6):017d}-{job_name}"

    def enqueue(self, job_name: str, creation_time: float) -> None:
        """Put a job in line before its controller exists (the service's side). A ticket
        left by an earlier controller of the job (a resumed job) is made new: empty, it
        waits for the new controller instead of counting as dead."""
        self.ticket_path(job_name, creation_time).write_bytes(b"")

    def withdraw(self, job_name: str, creation_time: float) -> None:
        """Take back a ticket whose controller could not be started."""
        self.ticket_path(job_name, creation_time).unlink(missing_ok=True)

    def join(self, job_name: str, creation_time: float) -> Ticket:
        """The controller's hold on its job's ticket (made now if the service did not)."""
        return Ticket(self.ticket_path(job_name, creation_time))

    def admit(
        self,
        ticket: Ticket,
        placement: Placement,
        should_stop: Callable[[], bool],
        on_wait: Callable[[int, str], None],
        poll: float = POLL_SECONDS,
        head_poll: float = HEAD_POLL_SECONDS,
    ) -> Grant | None:
        """Wait for the job's turn and take its slots and GPUs; None if stopped first.

        While it waits, ``on_wait(position, reason)`` is called every ``poll`` seconds, or
        every ``head_poll`` seconds at the head of the line (position 1).
        """
        started, reason = time.monotonic(), ""
        while True:
            with self._deciding():
                ahead = self._tickets_ahead(ticket.path)
                grant = None if ahead else self._take(placement)
                if grant is None:
                    reason = self._waiting_for(ahead, placement)
            if grant is not None:
                ticket.leave()
                grant.waited_seconds = time.monotonic() - started
                return grant
            on_wait(ahead + 1, reason)
            if should_stop():
                return None
            time.sleep(head_poll if ahead == 0 else poll)

    def held_slots(self, capacity: int) -> int:
        """How many of ``capacity`` instance slots are held right now (for tests and tools)."""
        with self._deciding():
            free = _lock_free(self._slot_paths(capacity))
            _close(free)
        return capacity - len(free)

    @contextlib.contextmanager
    def _deciding(self) -> Iterator[None]:
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _tickets_ahead(self, mine: Path) -> int:
        """Live tickets before ``mine``; dead ones are removed on the way."""
        ahead = 0
        for path in sorted((self.folder / "queue").iterdir()):
            if path.name >= mine.name:
                break
            if _ticket_alive(path):
                ahead += 1
        return ahead

    def _take(self, placement: Placement) -> Grant | None:
        """Lock the slots and GPUs the placement needs, all or none."""
        slots = _lock_free(self._slot_paths(placement.capacity))
        gpus = _lock_free(self._gpu_paths(placement.machine_gpus))
        if len(slots) < placement.instances or len(gpus) < placement.gpus:
            _close(slots + gpus)
            return None
        kept_slots, kept_gpus = slots[: placement.instances], gpus[: placement.gpus]
        _close(slots[placement.instances :] + gpus[placement.gpus :])
        return Grant(
            slots=[int(path.name) for path, _ in kept_slots],
            gpus=[placement.machine_gpus[int(path.name)] for path, _ in kept_gpus],
            waited_seconds=0.0,
            _files=[fd for _, fd in kept_slots + kept_gpus],
        )

    def _waiting_for(self, ahead: int, placement: Placement) -> str:
        if ahead:
            return f"{ahead} job{'s' if ahead > 1 else ''} ahead in the queue"
        cap = placement.capacity
        free = _lock_free(self._slot_paths(cap))
        _close(free)
        plural = "s" if placement.instances > 1 else ""
        reason = (
            f"waiting for {placement.instances} instance slot{plural} "
            f"({cap - len(free)} of {MAX_INSTANCES_VARIABLE}={cap} in use)"
        )
        if placement.gpus:
            free_gpus = _lock_free(self._gpu_paths(placement.machine_gpus))
            _close(free_gpus)
            total = len(placement.machine_gpus)
            reason += f" and {placement.gpus} GPUs ({len(free_gpus)} of {total} free)"
        return reason

    def _slot_paths(self, capacity: int) -> list[Path]:
        return [self.folder / "slots" / str(n) for n in range(capacity)]

    def _gpu_paths(self, machine_gpus: Sequence[str]) -> list[Path]:
        # Files are numbered by the GPU's place in the machine's list: ids may be UUIDs.
        return [self.folder / "gpus" / str(n) for n in range(len(machine_gpus))]


def _ticket_alive(path: Path) -> bool:
    """Whether a ticket's job is still waiting; a dead ticket is removed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # its controller holds it
        owner = os.pread(fd, 32, 0)
        age = time.time() - os.fstat(fd).st_mtime
        if not owner and age < START_GRACE_SECONDS:
            return True  # its controller is starting
        path.unlink(missing_ok=True)
        return False
    finally:
        os.close(fd)


def _lock_free(paths: Sequence[Path]) -> list[tuple[Path, int]]:
    """Lock every one of ``paths`` that nobody holds; the caller keeps or closes them."""
    taken = []
    for path in paths:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        taken.append((path, fd))
    return taken


def _close(taken: Sequence[tuple[Path, int]]) -> None:
    for _, fd in taken:
        os.close(fd)
