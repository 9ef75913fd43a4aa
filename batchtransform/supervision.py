"""Keeping an instance's model serving: restarts of a runtime that died, and a watchdog over
calls that nothing else bounds.

``SupervisedRuntime`` wraps the runtime an instance builds from its containers and is
itself a ``Runtime``:

* **A model that died is restarted.** When a call fails without an answer and the runtime
  is no longer ``alive()`` (its model server exited), the runtime is rebuilt from the same
  contexts and started again, up to ``RESTART_ATTEMPTS`` times with ``RESTART_BACKOFF``
  between tries; each restart and its cause go to the data-log and the instance log. The
  failed call's error is then raised as before, so the worker's retries (ModelClientConfig)
  send the request again, now to the new model: a file fails only if its own requests keep
  failing. A model that cannot be brought back raises ``InstanceLostError``: the instance
  is replaced and its item runs elsewhere. Restarts run on one long-lived thread, because a
  server's parent-death signal follows the thread that started it.
* **A call that nothing bounds is watched.** A model server's client keeps to
  InvocationsTimeoutInSeconds by itself; a handler called in-process cannot be interrupted,
  so the watchdog ends the whole instance when such a call outlives the timeout (one per
  container of a pipeline): the stuck thread's stack goes to the instance log, and the
  executor replaces the instance (the runtime restarted) and runs the item again, for as
  many tries as ModelClientConfig.InvocationsMaxRetries allows. The common path pays a
  lock and a dictionary entry per call; the watchdog's thread wakes a few times a second.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

from batchtransform.errors import InstanceLostError, ModelError
from batchtransform.executors.base import Report
from batchtransform.runtimes.base import ExecutionParameters, Runtime

__all__ = ["RESTART_ATTEMPTS", "SupervisedRuntime", "Watchdog"]

RESTART_ATTEMPTS = 3
RESTART_BACKOFF = (0.0, 1.0, 3.0)  # seconds before each restart attempt
_WATCH_INTERVAL = 0.25  # at most this late in noticing a call past its deadline


class SupervisedRuntime(Runtime):
    """The instance's runtime, restarted when it dies and watched where it cannot time out.

    ``build`` makes a new, unstarted runtime for the instance's containers; ``notice`` writes
    a data-log line; ``timeout`` bounds a call that the runtime does not bound itself.
    """

    def __init__(
        self,
        build: Callable[[], Runtime],
        notice: Callable[[str], None],
        log: TextIO,
        timeout: float,
    ) -> None:
        self._build, self._notice, self._log = build, notice, log
        self.inner = build()
        super().__init__(self.inner.context)
        self._generation = 0
        self._lock = threading.Lock()
        self._keeper: ThreadPoolExecutor | None = None
        self._given_up: InstanceLostError | None = None  # the calls after it need not try
        self.watchdog = Watchdog(timeout, notice, log)

    def start(self) -> None:
        self.inner.start()

    def execution_parameters(self) -> ExecutionParameters | None:
        return self.inner.execution_parameters()

    def alive(self) -> bool:
        return self.inner.alive()

    @property
    def restarts(self) -> int:
        """How often the runtime was brought back so far (``telemetry``)."""
        return self._generation

    def invoke(self, payload: bytes, content_type: str | None, accept: str | None) -> bytes:
        return self.invoke_with_type(payload, content_type, accept)[0]

    def invoke_with_type(
        self, payload: bytes, content_type: str | None, accept: str | None
    ) -> tuple[bytes, str | None]:
        """The current runtime's answer; a runtime found dead is restarted before the error
        is raised, so that a retry reaches the new one."""
        runtime, generation = self.inner, self._generation
        try:
            if runtime.bounds_invocations:
                return runtime.invoke_with_type(payload, content_type, accept)
            token = self.watchdog.enter()
            try:
                return runtime.invoke_with_type(payload, content_type, accept)
            finally:
                self.watchdog.leave(token)
        except ModelError as exc:
            if exc.model_status is None and not runtime.alive():
                self._restart(generation, exc)
            raise

    def stop(self) -> None:
        self.watchdog.close()
        with self._lock:
            self.inner.stop()
        if self._keeper is not None:
            self._keeper.shutdown(wait=False)

    def _restart(self, generation: int, cause: ModelError) -> None:
        """Restart the runtime once for all the calls that found it dead together."""
        with self._lock:
            if self._given_up is not None:
                raise self._given_up
            if generation != self._generation:
                return  # another call restarted it already
            if self._keeper is None:
                self._keeper = ThreadPoolExecutor(1, thread_name_prefix="runtime-keeper")
            try:
                self._keeper.submit(self._restart_now, _one_line(cause.message)).result()
            except InstanceLostError as exc:
                self._given_up = exc
                raise
            self._generation += 1

    def _restart_now(self, cause: str) -> None:
        self.inner.stop()
        problem = ""
        for attempt in range(1, RESTART_ATTEMPTS + 1):
            time.sleep(RESTART_BACKOFF[min(attempt, len(RESTART_BACKOFF)) - 1])
            self._say(
                f"The model died ({cause}); restarting it (attempt {attempt} of {RESTART_ATTEMPTS})"
            )
            runtime = self._build()
            try:
                runtime.start()
            except Exception as exc:
                runtime.stop()
                problem = _one_line(str(exc))
                self._say(f"The model did not restart: {problem}")
                continue
            self.inner = runtime
            self._say("The model was restarted")
            return
        raise InstanceLostError(
            f"the model died ({cause}) and could not be restarted "
            f"({RESTART_ATTEMPTS} attempts; last: {problem})"
        )

    def _say(self, line: str) -> None:
        self._notice(line)
        try:
            self._log.write(line + "\n")
            self._log.flush()
        except (OSError, ValueError):
            pass


class Watchdog:
    """Ends the instance when a watched call outlives ``timeout`` seconds.

    ``arm`` names the item under way and the executor's ``report`` (whose ``abandon`` ends
    the instance), and how many tries the item may have in all.
    """

    def __init__(self, timeout: float, notice: Callable[[str], None], log: TextIO) -> None:
        self.timeout, self._notice, self._log = timeout, notice, log
        self._calls: dict[int, tuple[float, int]] = {}  # token -> (deadline, thread)
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._item = ""
        self._report: Report | None = None
        self._attempts: int | None = None

    def arm(self, item: str, report: Report, attempts: int) -> None:
        self._item, self._report, self._attempts = item, report, attempts

    def enter(self) -> int:
        """Watch a call that starts now in this thread; returns its token for ``leave``."""
        token = next(self._tokens)
        with self._lock:
            self._calls[token] = (time.monotonic() + self.timeout, threading.get_ident())
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)
                self._thread.start()
        return token

    def leave(self, token: int) -> None:
        """The call ``token`` is over."""
        with self._lock:
            del self._calls[token]

    def close(self) -> None:
        self._closed.set()

    def _watch(self) -> None:
        while not self._closed.wait(_WATCH_INTERVAL):
            now = time.monotonic()
            with self._lock:
                late = [thread for deadline, thread in self._calls.values() if deadline < now]
            if late and self._report is not None:
                self._end(late[0], self._report)

    def _end(self, thread: int, report: Report) -> None:
        reason = (
            f"ModelError: no response from the model within {self.timeout:g} s "
            "(ModelClientConfig.InvocationsTimeoutInSeconds); the instance was ended "
            "and its model restarted"
        )
        self._notice(f"{self._item}: {reason}")
        frames = sys._current_frames().get(thread)
        stack = "".join(traceback.format_stack(frames)) if frames is not None else ""
        try:
            self._log.write(f"{self._item}: {reason}. The call was stuck at:\n{stack}")
            self._log.flush()
        except (OSError, ValueError):
            pass
        report.abandon(reason, self._attempts)


def _one_line(text: str) -> str:
    """The first line of a message, for a data-log line (the rest is in the instance log)."""
    lines = text.strip().splitlines()
    return " ".join(lines[0].split()) if lines else ""
