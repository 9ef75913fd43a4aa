"""What the controller sends to an instance, and what it gets back for each work item.

``InstanceFactory`` is the picklable recipe an executor sends to each instance, which
builds the instance's worker (``worker.TransformWorker``) there; ``ItemResult`` is how one
work item ended. This module stays light on purpose: the controller imports it to build
factories and read results, and never loads the data plane, the runtimes or numpy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batchtransform.executors.base import SPIN_VARIABLE, THREAD_VARIABLES
from batchtransform.shapes import ModelSpec, TransformJobSpec

if TYPE_CHECKING:
    from batchtransform.worker import TransformWorker


@dataclass(frozen=True)
class ItemResult:
    """How one work item ended, sent back to the controller."""

    ok: bool
    reason: str | None = None
    records: int = 0
    batches: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass(frozen=True)
class InstanceFactory:
    """Everything an instance needs, picklable: called with the instance number."""

    job: TransformJobSpec
    model: ModelSpec

    def __call__(self, index: int) -> TransformWorker:
        self._apply_thread_settings()
        from batchtransform.worker import TransformWorker  # in the instance only: see above

        return TransformWorker(self.job, self.model, index)

    def _apply_thread_settings(self) -> None:
        """The job's own OMP_NUM_THREADS and the like, set before any numeric library loads.

        Those libraries size their thread pools once, when they load, and the worker's own
        imports load numpy before the runtime applies the rest of the container's
        environment; without this, a thread count in the job's or the model's Environment
        would silently lose to the executor's default.
        """
        environment = self.job.container_environment(self.model.containers[0])
        for name in (*THREAD_VARIABLES, SPIN_VARIABLE):
            if name in environment:
                os.environ[name] = environment[name]
