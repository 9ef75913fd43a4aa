"""Instances as Ray actors, on a cluster or on a Ray started for the job.

The same contract as the local executor (``base.Executor``), the same worker factory: each
instance is an actor that builds its worker once, then is handed items one at a time by
whichever actor is free; small objects several at a time, their calls queued on the actor
in order, so that it goes from one to the next without waiting on this process. Actors
read their inputs and write their outputs straight from and to the object store; only
items, progress counters and results pass through here.

Resources: an actor asks Ray for what its instance type has (``instance_resources`` of
the factory: vCPUs, memory, GPUs; one CPU for ``local`` and unknown types), so Ray's own
scheduling decides which node runs it and how many run at once: actors that do not fit
yet wait for the cluster's free resources. A type that no live node could ever hold fails
the job at once, naming what is missing, instead of waiting for ever.

Death: an actor that dies (killed, its node lost) is noticed by its pending call failing;
the item it held runs again on another actor, up to ``MAX_ATTEMPTS`` tries in all, as on
the local executor, and the actor is replaced while the replacement budget lasts. A
worker that abandons its item (a hung handler) says so through the actor's poll, and the
executor kills the actor. A stop kills every actor at once; partial outputs are swept by
the controller as after a killed local instance.

Logs: an actor's worker writes the instance's model log and data-log under the job's
folder in ``BATCHTRANSFORM_HOME``, passed to the actor, as a local instance does. On one
machine (several Ray nodes included) that is the controller's own folder; across machines
it must be a shared folder for ``logs`` and Describe to see them (README).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, runtime_checkable

from batchtransform import config
from batchtransform.errors import BatchTransformError, ExecutorError, InstanceLostError
from batchtransform.executors.base import (
    OPENBLAS_SPIN,
    SMALL_AHEAD,
    SPIN_VARIABLE,
    THREAD_VARIABLES,
    Event,
    EventKind,
    Executor,
    Worker,
    WorkerFactory,
    retry_or_lose,
    small,
)
from batchtransform.executors.sampling import InstanceSampler, memory_limit
from batchtransform.instance_types import InstanceResources

__all__ = ["ADDRESS_VARIABLE", "RayExecutor", "ResourcedFactory"]

ADDRESS_VARIABLE = "RAY_ADDRESS"
_ITEMS, _POLLS = "items", "polls"  # an actor's concurrency groups
_POLL_SECONDS = 0.25
_PROGRESS_SECONDS = 0.5
_PROBE_SECONDS = 5.0
_SAMPLES_KEPT = 64  # an actor's samples while no poll comes (its start blocks none: threaded)
_MIB = 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
# What an actor's process takes from the controller's environment: the state folder, the
# object store's endpoint and credentials, model hub settings. A Ray worker starts from its
# node's environment, not ours.
_PASSED_PREFIXES = ("BATCHTRANSFORM_", "AWS_", "HF_", "TRANSFORMERS_")
_MISSING_EXTRA = (
    "the Ray executor needs Ray, which is not installed: install batchtransform[ray] "
    "(pip install 'batchtransform[ray]'), or choose the local executor"
)


@runtime_checkable
class ResourcedFactory(Protocol):
    """A worker factory that knows its instance's size and can prepare itself on a node."""

    def instance_resources(self) -> InstanceResources | None:
        """vCPUs, memory and GPUs of one instance; None: no fixed size (one CPU)."""

    def for_node(self) -> WorkerFactory:
        """The factory as run on this node: node-wide work (the model's download) done once."""


@dataclass(frozen=True)
class ActorShape:
    """What one actor asks Ray for."""

    num_cpus: float
    num_gpus: float
    memory: int | None  # bytes; None when the type has no fixed size

    @classmethod
    def of(cls, factory: WorkerFactory) -> ActorShape:
        size = factory.instance_resources() if isinstance(factory, ResourcedFactory) else None
        if size is None:
            return cls(1.0, 0.0, None)
        return cls(size.vcpus, size.gpus, size.memory_mib * _MIB)

    def describe(self) -> str:
        parts = [f"{self.num_cpus:g} CPU", f"{self.num_gpus:g} GPU"]
        if self.memory is not None:
            parts.append(f"{self.memory // _MIB} MiB of memory")
        return ", ".join(parts)


class RayExecutor(Executor):
    """Runs each instance as a Ray actor.

    ``address`` is the cluster's (``ray://`` or ``host:port``); None reads ``RAY_ADDRESS``,
    and with neither a Ray is started on this machine for the run and stopped after it.
    ``max_replacements`` bounds the dead actors replaced over the run, as locally.
    """

    def __init__(self, address: str | None = None, max_replacements: int | None = None) -> None:
        self.address = address
        self.max_replacements = max_replacements

    def run(
        self,
        items: Sequence[Any],
        factory: WorkerFactory,
        instance_count: int,
        on_event: Callable[[Event], None],
        should_stop: Callable[[], bool],
    ) -> bool:
        ray = _import_ray()
        shape = ActorShape.of(factory)
        started_here = _connect(ray, self.address or os.environ.get(ADDRESS_VARIABLE))
        run: _RayRun | None = None
        try:
            _check_fits(ray, shape, factory)
            run = _RayRun(ray, factory, shape, on_event, deque((item, 0) for item in items))
            run.replacements = self._replacements(instance_count)
            for _ in range(instance_count):
                run.start_instance()
            return run.loop(should_stop)
        finally:
            if run is not None:
                run.shutdown()
            if started_here:
                ray.shutdown()

    def _replacements(self, instance_count: int) -> int:
        if self.max_replacements is not None:
            return self.max_replacements
        return max(3, 2 * instance_count)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError(_MISSING_EXTRA) from None
    return ray


def _connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address``, or start a Ray here; True when started here."""
    if ray.is_initialized():
        return False
    if address:
        _probe(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, TimeoutError, ValueError) as exc:
            raise ExecutorError(f"cannot join the Ray cluster at {address}: {exc}") from exc
        return False
    ray.init(
        address="local",
        num_cpus=os.cpu_count() or 1,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    return True


def _probe(address: str) -> None:
    """Fail at once when nothing answers at a ``host:port`` address: Ray itself keeps
    retrying for minutes, during which the job could not even be stopped."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # ray://, auto, a name Ray resolves: left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=_PROBE_SECONDS).close()
    except OSError as exc:
        raise ExecutorError(
            f"cannot join the Ray cluster at {address} (RAY_ADDRESS or --ray-address): "
            f"nothing answers there ({exc.strerror or exc})"
        ) from None


def _check_fits(ray: Any, shape: ActorShape, factory: WorkerFactory) -> None:
    """Fail at once when no live node could ever hold one actor, naming what is missing."""
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    wanted = {"CPU": shape.num_cpus, "GPU": shape.num_gpus, "memory": shape.memory or 0}
    if any(all(node.get(k, 0.0) >= v for k, v in wanted.items() if v) for node in nodes):
        return
    best = {k: max((node.get(k, 0.0) for node in nodes), default=0.0) for k in wanted}
    short = [_shortfall(k, v, best[k]) for k, v in wanted.items() if v and best[k] < v]
    missing = "; ".join(short) or "no single node has all of them at once"
    kind = getattr(getattr(factory, "job", None), "instance_type", "the instance type")
    raise ExecutorError(
        f"no node of the Ray cluster can hold one instance of {kind}, which asks for "
        f"{shape.describe()}: {missing} (nodes: {len(nodes)})"
    )


def _shortfall(resource: str, wanted: float, largest: float) -> str:
    if resource == "memory":
        return (
            f"memory: {int(wanted) // _MIB} MiB wanted, the largest node has {int(largest) // _MIB}"
        )
    return f"{resource}: {wanted:g} wanted, the largest node has {largest:g}"


@dataclass
class _Held:
    """An item sent to an actor: its tries before this one, and the call that runs it."""

    item: Any
    attempts: int
    call: Any


@dataclass
class _Actor:
    index: int
    handle: Any
    starting: Any  # the pending start call, None once it answered
    held: deque[_Held] = field(default_factory=deque)  # sent, in order: the first under way
    ready: bool = False
    poll: Any = None  # a pending progress poll
    last_poll: float = field(default_factory=time.monotonic)

    @property
    def item(self) -> Any:
        """The item under way (None if none)."""
        return self.held[0].item if self.held else None


class _RayRun:
    """The state of one ``RayExecutor.run``: actors, pending items, replacements left."""

    def __init__(
        self,
        ray: Any,
        factory: WorkerFactory,
        shape: ActorShape,
        on_event: Callable[[Event], None],
        pending: deque[tuple[Any, int]],
    ) -> None:
        self.ray, self.factory, self.on_event, self.pending = ray, factory, on_event, pending
        self.actors: dict[int, _Actor] = {}
        self.replacements = 0  # set by the executor
        self.started = 0
        # items one at a time, in the order sent; polls (and read-aheads) beside them
        grouped = ray.remote(concurrency_groups={_ITEMS: 1, _POLLS: 1})(_InstanceActor)
        self.actor_class = grouped.options(
            num_cpus=shape.num_cpus, num_gpus=shape.num_gpus, memory=shape.memory, max_restarts=0
        )
        self.environment = _actor_environment(shape)

    def start_instance(self) -> None:
        self.started += 1
        index = self.started
        self.on_event(Event(EventKind.INSTANCE_LAUNCHED, index))
        handle = self.actor_class.remote(self.environment)
        self.actors[index] = _Actor(index, handle, handle.start.remote(self.factory, index))

    def loop(self, should_stop: Callable[[], bool]) -> bool:
        while self.actors:
            if should_stop():
                return False
            by_ref = {call: actor for actor in self.actors.values() for call in _calls(actor)}
            polls = {actor.poll: actor for actor in self.actors.values() if actor.poll}
            ready, _ = self.ray.wait(
                [*by_ref, *polls], num_returns=1, timeout=_POLL_SECONDS, fetch_local=True
            )
            for ref in ready:
                if ref in by_ref and self.actors.get(by_ref[ref].index) is by_ref[ref]:
                    self._finished(by_ref[ref], ref)
                elif ref in polls and self.actors.get(polls[ref].index) is polls[ref]:
                    self._polled(polls[ref], ref)
            self._ask_progress()
        return True

    def _finished(self, actor: _Actor, ref: Any) -> None:
        try:
            kind, detail = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as exc:
            self._lost(actor, _death_reason(exc), None)
            return
        except self.ray.exceptions.RayError as exc:
            self._lost(actor, f"the instance failed: {_first_line(exc)}", None)
            return
        if kind == "ready":
            actor.starting, actor.ready = None, True
            print(f"instance {actor.index} runs on Ray node {detail}", file=sys.stderr, flush=True)
            self.on_event(Event(EventKind.READY, actor.index, detail=detail))
            self._dispatch(actor)
        elif kind == "start_failed":
            self._forget(actor)
            self.on_event(Event(EventKind.START_FAILED, actor.index, detail=detail))
        elif kind == "done":
            held = _first(actor, ref)
            actor.held.popleft()
            self.on_event(Event(EventKind.ITEM_DONE, actor.index, held.item, detail))
            self._dispatch(actor)
        else:  # "lost": the worker gave up its item
            _first(actor, ref)
            reason, attempts = detail
            self._lost(actor, reason, attempts)

    def _polled(self, actor: _Actor, ref: Any) -> None:
        actor.poll = None
        try:
            progress, lost, samples = self.ray.get(ref)
        except self.ray.exceptions.RayError:
            return  # the pending call reports the death
        for sample in samples:
            self.on_event(Event(EventKind.INSTANCE_SAMPLE, actor.index, detail=sample))
        if lost is not None:
            self._lost(actor, *lost)
        elif progress is not None and actor.item is not None:
            self.on_event(Event(EventKind.ITEM_PROGRESS, actor.index, actor.item, progress))

    def _ask_progress(self) -> None:
        now = time.monotonic()
        for actor in self.actors.values():
            if actor.poll is None and now - actor.last_poll >= _PROGRESS_SECONDS:
                actor.last_poll = now
                actor.poll = actor.handle.poll.options(concurrency_group=_POLLS).remote()

    def _dispatch(self, actor: _Actor) -> None:
        """Send an actor its next item if it holds none and, while it and the next ones are
        small objects and enough are left for every other actor, more, up to
        ``SMALL_AHEAD`` beyond the one under way: Ray queues their calls on the actor, which
        goes from one to the next without a round trip to this process, and reads their
        inputs ahead. Each counts as started when it is sent."""
        if not self.pending and not actor.held:
            self._forget(actor)
            return
        while self.pending and (
            not actor.held
            or (
                len(actor.held) <= SMALL_AHEAD
                and len(self.pending) > len(self.actors)  # enough left for the others too
                and small(actor.held[-1].item, self.pending[0][0])
            )
        ):
            self._send(actor, *self.pending.popleft())
        if not self.pending:
            self._forget_unstarted()

    def _send(self, actor: _Actor, item: Any, attempts: int) -> None:
        self.on_event(Event(EventKind.ITEM_STARTED, actor.index, item))
        if actor.held:  # waits behind another: its input can be read meanwhile
            actor.handle.prefetch.options(concurrency_group=_POLLS).remote(item)
        call = actor.handle.process.options(concurrency_group=_ITEMS).remote(item)
        actor.held.append(_Held(item, attempts, call))

    def _forget_unstarted(self) -> None:
        """Every item is taken: actors still starting (or waiting for the cluster's room)
        would only load the model to find nothing left, so they go now. A later death puts
        an item back, and a replacement is started for it then."""
        for waiting in [a for a in self.actors.values() if not a.ready]:
            self._forget(waiting)

    def _lost(self, actor: _Actor, reason: str, allowed: int | None) -> None:
        """An actor's end other than a clean finish: reported once, its item run again."""
        self._forget(actor)
        self.on_event(Event(EventKind.INSTANCE_LOST, actor.index, actor.item, reason))
        if actor.held:
            under_way = actor.held.popleft()
            # those sent behind it were never begun: back to the queue, no try spent
            self.pending.extendleft((h.item, h.attempts) for h in reversed(actor.held))
            self._requeue(actor, under_way, reason, allowed)
        if self.pending and self.replacements > 0:
            self.replacements -= 1
            self.start_instance()

    def _requeue(self, actor: _Actor, held: _Held, reason: str, allowed: int | None) -> None:
        detail = retry_or_lose(self.pending, held.item, held.attempts + 1, allowed, reason)
        if detail is not None:
            self.on_event(Event(EventKind.ITEM_LOST, actor.index, held.item, detail))

    def _forget(self, actor: _Actor) -> None:
        """Take the actor out of the run and end it; a finished worker is stopped first."""
        present = self.actors.pop(actor.index, None) is not None
        if actor.ready and not actor.held:
            with contextlib.suppress(Exception):
                self.ray.get(actor.handle.stop.remote(), timeout=30)
        self._kill(actor)
        if present:  # its end reported once
            self.on_event(Event(EventKind.INSTANCE_ENDED, actor.index))

    def _kill(self, actor: _Actor) -> None:
        with contextlib.suppress(Exception):
            self.ray.kill(actor.handle, no_restart=True)

    def shutdown(self) -> None:
        """Kill every actor still running (a stop, or a run that failed)."""
        for actor in self.actors.values():
            self._kill(actor)
            self.on_event(Event(EventKind.INSTANCE_ENDED, actor.index))
        self.actors.clear()


def _calls(actor: _Actor) -> list[Any]:
    """The actor's pending calls: its start, or the items it holds."""
    return [held.call for held in actor.held] if actor.starting is None else [actor.starting]


def _first(actor: _Actor, call: Any) -> _Held:
    """The item whose ``call`` answered, put first among those the actor holds: Ray keeps
    the order of calls in a group of one thread, so it is first already, unless the order
    was not kept; then the item that answered is the one to count."""
    held = next(h for h in actor.held if h.call == call)
    actor.held.remove(held)
    actor.held.appendleft(held)
    return held


def _actor_environment(shape: ActorShape) -> dict[str, str]:
    """The controller's settings an actor needs, and the thread settings a local instance
    gets (numeric threads for its CPUs, OpenBLAS spin). Given to the actor's constructor
    rather than as Ray's ``runtime_env``, which would cost every actor a fresh worker
    process (2-3 s here) instead of one of the node's idle ones."""
    passed = {k: v for k, v in os.environ.items() if k.startswith(_PASSED_PREFIXES)}
    passed["BATCHTRANSFORM_HOME"] = str(config.home())
    threads = str(max(1, int(shape.num_cpus)))
    for name in THREAD_VARIABLES:
        passed[name] = os.environ.get(name, threads)
    passed[SPIN_VARIABLE] = os.environ.get(SPIN_VARIABLE, OPENBLAS_SPIN)
    return passed


def _keep_malloc_blocks() -> None:
    """What ``GLIBC_TUNABLES`` gives a local instance (see ``local._MALLOC_TUNABLES``),
    set with ``mallopt`` in a process already running, unless the node's own environment
    has tunables of the user's; a no-op off glibc."""
    if "GLIBC_TUNABLES" in os.environ:
        return
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 32 * _MIB)
    mallopt(_M_TRIM_THRESHOLD, 64 * _MIB)


def _death_reason(exc: BaseException) -> str:
    """Why an actor died, in one line: Ray's long message starts with its cause."""
    text = _first_line(exc)
    return f"the instance's Ray actor died: {text}"


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# Inside the actor


class _InstanceActor:
    """One instance: its worker, built once, then items one at a time.

    Threaded, in concurrency groups of one thread each: items in the order they were sent,
    and beside them the executor's polls for progress and the read-aheads of the items
    waiting their turn, answered while an item runs.
    """

    def __init__(self, environment: dict[str, str]) -> None:
        _keep_malloc_blocks()
        os.environ.update(environment)  # before the worker's imports load numpy
        self.worker: Worker | None = None
        self.report = _ActorReport()
        self.samples: deque[dict[str, float]] = deque(maxlen=_SAMPLES_KEPT)

    def start(self, factory: WorkerFactory, index: int) -> tuple[str, Any]:
        import ray

        # measured from the start (the model's load shows), the samples waiting for ``poll``
        InstanceSampler(self.samples.append, memory_limit(factory)).start()
        try:
            prepare = factory.for_node if isinstance(factory, ResourcedFactory) else None
            worker = (prepare() if prepare else factory)(index)
            worker.start()
        except BaseException as exc:  # a start failure is reported, whatever it is
            return "start_failed", _describe(exc)
        self.worker = worker
        return "ready", ray.get_runtime_context().get_node_id()

    def prefetch(self, item: Any) -> None:
        """Start reading an item's input before its turn, if the worker can."""
        prefetch = getattr(self.worker, "prefetch", None)
        if prefetch is not None:
            with contextlib.suppress(Exception):  # only a head start: never fatal
                prefetch(item)

    def process(self, item: Any) -> tuple[str, Any]:
        assert self.worker is not None
        try:
            return "done", self.worker.process(item, self.report)
        except InstanceLostError as exc:
            return "lost", (exc.message, exc.attempts)
        finally:
            self.report.latest = None

    def poll(
        self,
    ) -> tuple[dict[str, Any] | None, tuple[str, int | None] | None, list[dict[str, float]]]:
        """The item's latest progress, the worker's reason to give up, if any, and the
        samples taken since the last poll."""
        samples = [self.samples.popleft() for _ in range(len(self.samples))]
        return self.report.latest, self.report.lost, samples

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None


class _ActorReport:
    """The worker's ``Report`` inside an actor: progress kept for the next poll; abandoning
    parks the calling thread, and the executor, told by the poll, kills the actor."""

    def __init__(self) -> None:
        self.latest: dict[str, Any] | None = None
        self.lost: tuple[str, int | None] | None = None

    def __call__(self, detail: dict[str, Any]) -> None:
        self.latest = dict(detail)

    def abandon(self, reason: str, attempts: int | None = None) -> NoReturn:
        self.lost = (reason, attempts)
        sys.stdout.flush()
        sys.stderr.flush()
        while True:  # the actor is killed from outside; nothing of this item goes on here
            threading.Event().wait()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BatchTransformError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
