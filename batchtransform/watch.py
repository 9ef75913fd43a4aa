"""The server's background check for jobs whose controller is gone.

A job's controller is a process of its own; if it is killed (or the machine reboots under
it) nothing else would end its job, and before this check the store said ``InProgress``
until someone read the job. ``batchtransform server`` runs a ``ControllerWatch``, so such a
job ends ``Failed`` (or ``Stopped`` if it was stopping) within a few seconds, seen by
clients that poll ``ListTransformJobs`` by status and by anything reading the store.
"""

from __future__ import annotations

import logging
import threading

from batchtransform.service import Service

__all__ = ["CONTROLLER_CHECK_SECONDS", "ControllerWatch"]

logger = logging.getLogger(__name__)

CONTROLLER_CHECK_SECONDS = 2.0
"""How often the running jobs' controllers are checked."""


class ControllerWatch:
    """Runs ``Service.check_controllers`` every ``interval`` seconds on a daemon thread.

    A check that fails (the database briefly locked, say) is logged and tried again at the
    next tick: the watch must outlive any one bad moment of the store.
    """

    def __init__(self, service: Service, interval: float = CONTROLLER_CHECK_SECONDS) -> None:
        self.service, self.interval = service, interval
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
