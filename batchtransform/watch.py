"""The server's background check for jobs whose controller is gone.

A job's controller is a process of its own; if it is killed (or the machine reboots under
it) nothing else would end its job, and before this check the store said ``InProgress``
until someone read the job. ``batchtransform server`` runs a ``ControllerWatch``, so such a
job ends ``Failed`` (or ``Stopped`` if it was stopping) within a few seconds, seen by
clients that poll ``ListTransformJobs`` by status and by anything reading the store.

The watch also removes, every ``KEPT_PARTS_SWEEP_SECONDS``, the range parts that ended jobs
kept for a resume longer than they are kept (``assembly.sweep_kept_parts``), so that a
server's store is swept even when no job ends on it.
"""

from __future__ import annotations

import logging
import threading
import time

from batchtransform.assembly import sweep_kept_parts
from batchtransform.service import Service

__all__ = ["CONTROLLER_CHECK_SECONDS", "KEPT_PARTS_SWEEP_SECONDS", "ControllerWatch"]

logger = logging.getLogger(__name__)

CONTROLLER_CHECK_SECONDS = 2.0
"""How often the running jobs' controllers are checked."""

KEPT_PARTS_SWEEP_SECONDS = 600.0
"""How often kept range parts past their time are looked for (a scan of ended jobs)."""


class ControllerWatch:
    """Runs ``Service.check_controllers`` every ``interval`` seconds on a daemon thread.

    A check that fails (the database briefly locked, say) is logged and tried again at the
    next tick: the watch must outlive any one bad moment of the store.
    """

    def __init__(
        self,
        service: Service,
        interval: float = CONTROLLER_CHECK_SECONDS,
        sweep_interval: float = KEPT_PARTS_SWEEP_SECONDS,
    ) -> None:
        self.service, self.interval, self.sweep_interval = service, interval, sweep_interval
        self._next_sweep = 0.0  # monotonic; the first tick sweeps
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="controller-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the watch; returns once a check under way has finished."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                for name in self.service.check_controllers():
                    logger.warning("transform job %s ended: its controller process is gone", name)
            except Exception:
                logger.exception("checking the transform jobs' controllers failed")
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self.sweep_interval
                self._sweep()

    def _sweep(self) -> None:
        try:
            for name in sweep_kept_parts(self.service.store):
                logger.info("removed the range parts transform job %s kept", name)
        except Exception:
            logger.exception("removing the range parts ended jobs kept failed")
