"""What the controller sends to an instance, and what it gets back for each work item.

``InstanceFactory`` is the picklable recipe an executor sends to each instance, which
builds the instance's worker (``worker.TransformWorker``) there; ``ItemResult`` is how one
work item ended. This module stays light on purpose: the controller imports it to build
factories and read results, and never loads the data plane, the runtimes or numpy.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batchtransform.errors import ValidationError
from batchtransform.executors.base import SPIN_VARIABLE, THREAD_VARIABLES
from batchtransform.instance_types import InstanceResources, resources_for
from batchtransform.shapes import ModelSpec, TransformJobSpec
from batchtransform.telemetry import Latency

if TYPE_CHECKING:
    from batchtransform.worker import TransformWorker


# The job's Environment may ask for a share of a GPU, or several, per instance (Ray).
GPUS_PER_INSTANCE = "BATCHTRANSFORM_GPUS_PER_INSTANCE"


@dataclass(frozen=True)
class ItemResult:
    """How one work item ended, sent back to the controller."""

    ok: bool
    reason: str | None = None
    records: int = 0
    batches: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    failed_records: int = 0  # left out of the output, with record errors on
    retries: int = 0  # model calls sent again (ModelClientConfig.InvocationsMaxRetries)
    restarts: int = 0  # runtime restarts while the item ran (``supervision``)
    latency: Latency | None = None  # the item's model calls (``telemetry``)
    output_stamp: str | None = None  # the committed output's size and ETag or mtime


@dataclass(frozen=True)
class InstanceFactory:
    """Everything an instance needs, picklable: called with the instance number."""

    job: TransformJobSpec
    model: ModelSpec

    def __call__(self, index: int) -> TransformWorker:
        self._apply_thread_settings()
        from batchtransform.worker import TransformWorker  # in the instance only: see above

        return TransformWorker(self.job, self.model, index)

    def instance_resources(self) -> InstanceResources | None:
        """What one instance of the job's InstanceType has (None: ``local``, or a type the
        table does not know), with the GPUs per instance that the job's Environment may
        ask for in ``BATCHTRANSFORM_GPUS_PER_INSTANCE`` (a fraction shares a GPU)."""
        size = resources_for(self.job.instance_type)
        value = self.job.environment.get(GPUS_PER_INSTANCE)
        if value is None:
            return size
        try:
            gpus = float(value)
        except ValueError:
            gpus = -1.0
        if not 0 <= gpus < float("inf"):
            raise ValidationError(
                f"Environment {GPUS_PER_INSTANCE}={value!r} is not a number of GPUs",
                f"Environment.{GPUS_PER_INSTANCE}",
            )
        base = size or InstanceResources(vcpus=1.0, memory_mib=0, gpus=0.0)
        return dataclasses.replace(base, gpus=gpus)

    def for_node(self) -> InstanceFactory:
        """This factory as its instances run on one node of a cluster: the model fetched
        once for the node (``model_cache``), each instance copying it from there."""
        from batchtransform.model_cache import node_cached  # in the instance only

        return dataclasses.replace(self, model=node_cached(self.job.name, self.model))

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
