"""What the controller sends to an instance, and what it gets back for each work item.

``InstanceFactory`` is the picklable recipe an executor sends to each instance, which
builds the instance's worker (``worker.TransformWorker``) there; ``ItemResult`` is how one
work item ended. This module stays light on purpose: the controller imports it to build
factories and read results, and never loads the data plane, the runtimes or numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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
        from batchtransform.worker import TransformWorker  # in the instance only: see above

        return TransformWorker(self.job, self.model, index)
