"""Instances as processes on this machine.

Each instance is a ``spawn``-ed process (a clean interpreter, as a real instance is) talking
to the executor over its own pipe. Items are handed out one at a time to whichever instance
asks, so a slow file never holds up the others; small objects (``WorkItem.small``) go out
several in one message, up to eight held at a time, while enough are left for every
instance, so that the instance fetches the next inputs and uploads the last outputs while
it works on one, and never waits on this process between objects; it reports their
results in the order they came.
A pipe per instance, rather than one shared queue, means an instance killed mid-item
cannot corrupt anyone else's channel, and the executor always knows which items it held
(one sent ahead goes back to the queue, no try spent, if its instance dies).

Death: an instance's pipe and its process handle both report its end, often in the same
``wait``; the executor acts on the instance object it still holds, so each death is handled
once. The item it held runs again on another instance, up to ``MAX_ATTEMPTS`` tries in all
(a worker may ask for fewer), then is reported lost. A replacement gets a new instance
number, so its model folder and logs are its own.

Placement: ``placed`` gives each instance slot an environment of its own (the GPUs the
admission step gave it, in ``CUDA_VISIBLE_DEVICES``); a replacement takes over the slot,
and so the GPUs, of the instance it replaces, so two instances never hold one slot.

Orphans: each instance leads a session of its own, and the processes its model starts
stay in that session (``sessions``), so when an instance is gone, killed outright
included, the executor kills whatever is left of its session: model servers and their
children.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, NoReturn

from batchtransform.errors import BatchTransformError, InstanceLostError
from batchtransform.executors import sessions
from batchtransform.executors.base import (
    OPENBLAS_SPIN,
    SMALL_AHEAD,
    SPIN_VARIABLE,
    THREAD_VARIABLES,
    Event,
    EventKind,
    Executor,
    WorkerFactory,
    retry_or_lose,
    small,
)
from batchtransform.executors.sampling import InstanceSampler, memory_limit

_POLL_SECONDS = 0.25
# glibc's malloc hands large freed blocks back to the system (its thresholds adapt only to
# twice the last block freed), so every mini-batch-sized buffer (payload, decoded text,
# response, the model's frames) is faulted in and zeroed anew: copying and decoding a 6 MiB
# payload took 4.2 ms instead of 1.0 ms, and the instance's pipeline ran 10 % slower.
# Instances keep blocks up to 32 MiB (glibc's ceiling) and 64 MiB of free heap for reuse.
_MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864"
# How long an instance whose controller is gone has to stop its model after SIGTERM before
# it ends itself outright (a handler stuck in native code never sees the SIGTERM).
_ORPHAN_GRACE_SECONDS = 10.0
_LOST_EXIT_CODE = 70  # an instance that abandoned its item (its reason came on the pipe)


@dataclass
class _Instance:
    index: int
    slot: int
    process: BaseProcess
    conn: Connection
    item: Any = None
    attempts: int = 0
    ahead: deque[tuple[Any, int]] = field(default_factory=deque)  # sent, not yet begun
    closing: bool = False  # told to exit, or failed to start: its exit is expected
    lost: tuple[str, int | None] | None = None  # the instance's own reason for leaving
    pipe_closed: bool = False
    started: float = field(default_factory=time.monotonic)


class LocalExecutor(Executor):
    """Runs each instance as a local process.

    ``grace_seconds`` is how long a stopped instance may take to clean up (discard partial
    outputs) after SIGTERM before it is killed. ``max_replacements`` bounds how many dead
    instances are replaced over the run, so a model that crashes every process cannot loop;
    by default twice the instance count, at least 3. ``slot_environments`` (see
    ``placed``) adds variables to each instance slot's environment.
    """

    def __init__(self, grace_seconds: float = 10.0, max_replacements: int | None = None) -> None:
        self.grace_seconds = grace_seconds
        self.max_replacements = max_replacements
        self.slot_environments: tuple[Mapping[str, str], ...] = ()
        self._context = multiprocessing.get_context("spawn")

    def placed(self, environments: Sequence[Mapping[str, str]]) -> LocalExecutor:
        """This executor with ``environments[n]`` added to the environment of the instance
        in slot ``n`` (and of any replacement of it); slots beyond the list get nothing."""
        executor = copy.copy(self)
        executor.slot_environments = tuple(dict(env) for env in environments)
        return executor

    def run(
        self,
        items: Sequence[Any],
        factory: WorkerFactory,
        instance_count: int,
        on_event: Callable[[Event], None],
        should_stop: Callable[[], bool],
    ) -> bool:
        threads = max(1, (os.cpu_count() or 1) // max(1, instance_count))
        run = _Run(self, factory, on_event, deque((item, 0) for item in items), threads)
        run.replacements = self._replacements(instance_count)
        try:
            for slot in range(instance_count):
                run.start_instance(slot)
            return run.loop(should_stop)
        finally:
            run.shutdown()

    def _replacements(self, instance_count: int) -> int:
        if self.max_replacements is not None:
            return self.max_replacements
        return max(3, 2 * instance_count)


class _Run:
    """The state of one ``LocalExecutor.run``: instances, pending items, replacements left."""

    def __init__(
        self,
        executor: LocalExecutor,
        factory: WorkerFactory,
        on_event: Callable[[Event], None],
        pending: deque[tuple[Any, int]],
        threads: int,
    ) -> None:
        self.executor = executor
        self.factory = factory
        self.on_event = on_event
        self.pending = pending
        self.instances: dict[int, _Instance] = {}
        self.replacements = 0  # set by the executor
        self.started = 0  # instances started so far; the next one is numbered one more
        self.threads = threads  # numeric-library threads per instance

    def start_instance(self, slot: int) -> None:
        self.started += 1
        index = self.started
        parent, child = self.executor._context.Pipe()
        process = self.executor._context.Process(
            target=_instance_main,
            args=(child, self.factory, index, self.threads),
            name=f"batchtransform-instance-{index}",
            daemon=False,
        )
        self.on_event(Event(EventKind.INSTANCE_LAUNCHED, index))
        with _instance_environment(self._slot_environment(slot)):
            process.start()
        child.close()
        self.instances[index] = _Instance(index, slot, process, parent)

    def _slot_environment(self, slot: int) -> Mapping[str, str]:
        environments = self.executor.slot_environments
        return environments[slot] if slot < len(environments) else {}

    def loop(self, should_stop: Callable[[], bool]) -> bool:
        while self.instances:
            if should_stop():
                return False
            by_handle: dict[Any, _Instance] = {}
            for instance in self.instances.values():
                if not instance.pipe_closed:
                    by_handle[instance.conn] = instance
                by_handle[instance.process.sentinel] = instance
            for handle in wait(list(by_handle), timeout=_POLL_SECONDS):
                instance = by_handle[handle]
                # Its pipe and its sentinel may both be ready: the first handles the death,
                # and the second must not touch the replacement (nor anything else).
                if self.instances.get(instance.index) is instance:
                    self._service(instance)
        return True

    def _service(self, instance: _Instance) -> None:
        try:
            while instance.conn.poll():
                self._handle(instance, *instance.conn.recv())
        except (EOFError, OSError):
            instance.pipe_closed = True  # the sentinel reports the exit, soon if not now
        if _exited(instance.process):
            self._reap(instance)

    def _handle(self, instance: _Instance, kind: str, detail: Any) -> None:
        if kind == "ready":
            self.on_event(Event(EventKind.READY, instance.index))
            self._dispatch(instance)
        elif kind == "start_failed":
            instance.closing = True
            self.on_event(Event(EventKind.START_FAILED, instance.index, detail=detail))
        elif kind == "progress":
            self.on_event(Event(EventKind.ITEM_PROGRESS, instance.index, instance.item, detail))
        elif kind == "sample":
            self.on_event(Event(EventKind.INSTANCE_SAMPLE, instance.index, detail=detail))
        elif kind == "done":
            item, instance.item = instance.item, None
            self.on_event(Event(EventKind.ITEM_DONE, instance.index, item, detail))
            if instance.ahead:  # the instance goes straight on with those it was sent
                instance.item, instance.attempts = instance.ahead.popleft()
            self._dispatch(instance)
        elif kind == "lost":
            reason, attempts = detail
            instance.lost = (str(reason), attempts)

    def _dispatch(self, instance: _Instance) -> None:
        """Give an instance its next item if it has none and, while it and the next ones
        are small objects and enough are left for every other instance, more, up to
        ``SMALL_AHEAD`` beyond the one it works on, all in one message: the instance
        fetches their inputs and commits their outputs while it works on others, and never
        waits for this process between them. Each counts as started when it is sent, since
        the instance may begin it at once; their results come back in the order sent."""
        sent = []
        if instance.item is None:
            if not self.pending:
                instance.closing = True
                _send(instance.conn, None)
                return
            instance.item, instance.attempts = self.pending.popleft()
            sent.append(instance.item)
        while (
            len(instance.ahead) < SMALL_AHEAD
            and len(self.pending) > len(self.instances)  # enough left for the others too
            and small(instance.item, self.pending[0][0])
        ):
            instance.ahead.append(self.pending.popleft())
            sent.append(instance.ahead[-1][0])
        for item in sent:
            self.on_event(Event(EventKind.ITEM_STARTED, instance.index, item))
        if sent:
            _send(instance.conn, sent)

    def _reap(self, instance: _Instance) -> None:
        """Handle an instance's end, exactly once: it is no longer in ``instances`` after."""
        del self.instances[instance.index]
        # Before the join, while the dead instance's number cannot be anyone else's.
        _sweep(instance.process)  # its model servers and their children
        instance.process.join()
        instance.conn.close()
        self.on_event(Event(EventKind.INSTANCE_ENDED, instance.index))
        if instance.closing and instance.item is None and instance.lost is None:
            return
        reason, attempts = instance.lost or (_exit_reason(instance.process.exitcode), None)
        self.on_event(Event(EventKind.INSTANCE_LOST, instance.index, instance.item, reason))
        self.pending.extendleft(reversed(instance.ahead))  # never begun: no try spent
        if instance.item is not None:
            self._requeue(instance, reason, attempts)
        if self.pending and self.replacements > 0:
            self.replacements -= 1
            self.start_instance(instance.slot)

    def _requeue(self, instance: _Instance, reason: str, allowed: int | None) -> None:
        tries = instance.attempts + 1
        detail = retry_or_lose(self.pending, instance.item, tries, allowed, reason)
        if detail is not None:
            self.on_event(Event(EventKind.ITEM_LOST, instance.index, instance.item, detail))

    def shutdown(self) -> None:
        """Stop every instance still running: SIGTERM (they discard partial work), then kill;
        then whatever their models left running."""
        for instance in self.instances.values():
            if not _exited(instance.process):
                instance.process.terminate()
        deadline = time.monotonic() + self.executor.grace_seconds
        for instance in self.instances.values():
            if not _exited(instance.process, max(0.0, deadline - time.monotonic())):
                instance.process.kill()
                _exited(instance.process, None)
            _sweep(instance.process)
            instance.process.join()
            instance.conn.close()
            self.on_event(Event(EventKind.INSTANCE_ENDED, instance.index))
        self.instances.clear()


@contextlib.contextmanager
def _instance_environment(slot_environment: Mapping[str, str]) -> Iterator[None]:
    """What a new instance process starts with beyond this process's environment, which
    ``spawn`` copies: its slot's variables (its GPUs), and malloc settings, read by the C
    library before any Python runs. A GLIBC_TUNABLES of the user's own is left as it is;
    other C libraries ignore it."""
    added = {} if "GLIBC_TUNABLES" in os.environ else {"GLIBC_TUNABLES": _MALLOC_TUNABLES}
    added.update(slot_environment)
    saved = {name: os.environ.get(name) for name in added}
    os.environ.update(added)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _exited(process: BaseProcess, timeout: float | None = 0.0) -> bool:
    """Whether the process has ended (waiting up to ``timeout``; None: for ever), without
    reaping it: until it is joined, its number stays its own."""
    return bool(wait([process.sentinel], timeout))


def _sweep(process: BaseProcess) -> None:
    """Kill what an ended instance left in its session."""
    if process.pid is not None:
        sessions.kill_session(process.pid)


def _send(conn: Connection, message: Any) -> None:
    with contextlib.suppress(OSError):  # the instance died; its sentinel reports it
        conn.send(message)


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        return f"the instance process was killed by {name}"
    return f"the instance process exited unexpectedly with code {exitcode}"


# Inside the instance process


class _Channel:
    """The instance's end of its pipe, safe from several threads: the worker's watchdog
    may abandon the item while the main thread is sending progress."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, kind: str, detail: Any) -> None:
        with self._lock:
            self.conn.send((kind, detail))

    def __call__(self, detail: dict[str, Any]) -> None:
        self.send("progress", detail)

    def abandon(self, reason: str, attempts: int | None = None) -> NoReturn:
        """Tell the executor why, then end this process at once (see ``base.Report``)."""
        with contextlib.suppress(OSError):
            self.send("lost", (reason, attempts))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_LOST_EXIT_CODE)


def _instance_main(conn: Connection, factory: WorkerFactory, index: int, threads: int) -> None:
    """The instance's whole life: build and start the worker, then serve items until told."""
    sessions.lead_session()  # what the model starts stays in it, to be swept after us
    for name in THREAD_VARIABLES:  # instances share the cores, unless told otherwise
        os.environ.setdefault(name, str(threads))
    os.environ.setdefault(SPIN_VARIABLE, OPENBLAS_SPIN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _exit_with_parent()
    channel = _Channel(conn)
    InstanceSampler(lambda values: channel.send("sample", values), memory_limit(factory)).start()
    try:
        worker = factory(index)
        worker.start()
    except BaseException as exc:  # a start failure is reported, whatever it is
        channel.send("start_failed", _describe(exc))
        return
    channel.send("ready", None)
    results = _Results(channel)
    if hasattr(worker, "commit_behind"):
        worker.commit_behind = True  # its results may be futures: _Results sends them in turn
    try:
        for item in _items(conn, worker):
            results.add(worker.process(item, channel))
        results.finish()
    except EOFError:
        pass  # the executor went away
    except InstanceLostError as exc:
        results.finish()
        channel.send("lost", (exc.message, exc.attempts))
    finally:
        worker.stop()
    _leave()


class _Results:
    """Sends each item's result, in the order the items came, as it is ready: a worker's
    result may be a future (an upload still under way) while it goes on with the next
    item. At most ``SMALL_AHEAD`` + 1 wait, which the executor's dispatch bounds anyway."""

    def __init__(self, channel: _Channel) -> None:
        self.channel = channel
        self.waiting: queue.Queue[Any] = queue.Queue(maxsize=SMALL_AHEAD + 1)
        self.thread = threading.Thread(target=self._send, name="results", daemon=True)
        self.thread.start()

    def add(self, result: Any) -> None:
        self.waiting.put(result)

    def finish(self) -> None:
        """Wait until every result so far is sent."""
        self.waiting.put(_FINISHED)
        self.thread.join()

    def _send(self) -> None:
        while (result := self.waiting.get()) is not _FINISHED:
            if isinstance(result, Future):
                result = result.result()
            with contextlib.suppress(OSError):  # the executor is gone
                self.channel.send("done", result)


_FINISHED = object()


def _items(conn: Connection, worker: Any) -> Iterator[Any]:
    """The items the executor sends (lists of them), in order, until it sends None
    (EOFError if it goes away). A thread receives them, so that those sent ahead of their
    turn (``_Run._dispatch``) reach the worker's ``prefetch``, if it has one, while the
    current one runs."""
    arrived: queue.SimpleQueue[Any] = queue.SimpleQueue()
    prefetch = getattr(worker, "prefetch", None)

    def receive() -> None:
        try:
            while (items := conn.recv()) is not None:
                for item in items:
                    if prefetch is not None:
                        with contextlib.suppress(Exception):  # only a head start: never fatal
                            prefetch(item)
                    arrived.put(item)
        except (EOFError, OSError):
            arrived.put(EOFError)
            return
        arrived.put(None)

    threading.Thread(target=receive, name="items", daemon=True).start()
    while (item := arrived.get()) is not None:
        if item is EOFError:
            raise EOFError
        yield item


def _leave() -> None:
    """End a served instance without the interpreter's teardown.

    Freeing every module and object of a loaded model (pandas, scikit-learn, a framework)
    takes a quarter of a second or more, and the job ends only when its instances have
    exited. The worker has stopped and closed its logs by now; exit handlers still run and
    output is flushed. Threads the model left running are not waited for, as a container
    that is shut down does not wait for them either.
    """
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """Turn SIGTERM into SystemExit so context managers discard partial outputs."""
    raise SystemExit(128 + signum)


def _exit_with_parent() -> None:
    """An instance must not outlive its controller, even if the controller was SIGKILLed.

    SIGTERM first, so that the worker stops its model and discards partial outputs; if the
    main thread is stuck where SIGTERM cannot reach it (a handler in native code), the
    instance ends its session's other processes and itself.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(_ORPHAN_GRACE_SECONDS)
        sessions.kill_session(os.getpid())
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _describe(exc: BaseException) -> str:
    """Our own errors already read well; anything else keeps its type name."""
    if isinstance(exc, BatchTransformError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
