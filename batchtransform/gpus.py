"""The GPUs of this machine, and how a job's instances get them.

A GPU instance type (``ml.g5.xlarge``, ...) carries its GPU count in the instance type
table; on one machine each instance of such a job gets that many GPUs of its own, named in
its ``CUDA_VISIBLE_DEVICES`` (and passed to its container by the container engine). The
machine's GPUs are those ``BATCHTRANSFORM_GPUS`` names (``0,1,...``; empty for none), else
those ``nvidia-smi -L`` lists.

Sharing is asked for per job with ``BATCHTRANSFORM_GPUS_PER_INSTANCE`` in the job's
Environment: a whole number gives each instance that many GPUs whatever its type; a
fraction puts several of the job's own instances on one GPU (``0.5``: two instances
a GPU, ``0.25``: four). GPUs are never shared between jobs: a job holds whole GPUs, which is
what the admission step (``admission``) counts.

An instance of a type without GPUs sees none (``CUDA_VISIBLE_DEVICES`` empty), as on
SageMaker; ``InstanceType: local`` and types the table does not know keep the service's
own environment.
"""

from __future__ import annotations

import functools
import math
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from batchtransform.errors import ValidationError
from batchtransform.instance_types import LOCAL, resources_for

__all__ = [
    "GPUS_VARIABLE",
    "PER_INSTANCE_VARIABLE",
    "VISIBLE_DEVICES",
    "GpuDemand",
    "gpu_demand",
    "machine_gpus",
]

GPUS_VARIABLE = "BATCHTRANSFORM_GPUS"
PER_INSTANCE_VARIABLE = "BATCHTRANSFORM_GPUS_PER_INSTANCE"
VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
_NVIDIA_SMI_SECONDS = 20.0
_GPU_LINE = re.compile(r"^GPU (\d+):", re.MULTILINE)


@dataclass(frozen=True)
class GpuDemand:
    """What each instance of a job asks for: ``per_instance`` GPUs (0: none, a fraction:
    a share of one), and where that figure came from, for messages."""

    per_instance: float
    source: str

    @property
    def instances_per_gpu(self) -> int:
        """How many of the job's instances one GPU takes (1 unless a fraction is asked)."""
        if self.per_instance >= 1:
            return 1
        return max(1, math.floor(1 / self.per_instance + 1e-9))

    @property
    def whole(self) -> int:
        """Whole GPUs one instance holds, when it holds one or more (a table's 1.5 is 2)."""
        return math.ceil(self.per_instance)

    def gpus_for(self, instances: int) -> int:
        """Whole GPUs that ``instances`` instances of the job hold together."""
        if not self.per_instance:
            return 0
        if self.per_instance >= 1:
            return instances * self.whole
        return math.ceil(instances / self.instances_per_gpu)

    def instances_on(self, gpus: int) -> int:
        """How many instances fit on ``gpus`` GPUs."""
        if self.per_instance >= 1:
            return gpus // self.whole
        return gpus * self.instances_per_gpu

    def environments(self, instances: int, gpus: Sequence[str]) -> list[dict[str, str]]:
        """Each instance's ``CUDA_VISIBLE_DEVICES``, given the GPUs the job holds."""
        if not self.per_instance or not gpus:
            return [{VISIBLE_DEVICES: ""} for _ in range(instances)]
        if self.per_instance >= 1:
            each = self.whole
            shares = [gpus[n * each : (n + 1) * each] for n in range(instances)]
        else:
            shares = [[gpus[n // self.instances_per_gpu]] for n in range(instances)]
        return [{VISIBLE_DEVICES: ",".join(share)} for share in shares]


def gpu_demand(instance_type: str, environment: Mapping[str, str]) -> GpuDemand | None:
    """What each instance of a job asks for; None when the job leaves GPUs alone
    (``local`` or an unknown type, and no ``BATCHTRANSFORM_GPUS_PER_INSTANCE``).

    Raises ValidationError for a bad ``BATCHTRANSFORM_GPUS_PER_INSTANCE``, naming it.
    """
    asked = environment.get(PER_INSTANCE_VARIABLE)
    if asked is not None:
        return GpuDemand(_per_instance(asked), f"{PER_INSTANCE_VARIABLE}={asked}")
    if instance_type == LOCAL:
        return None
    resources = resources_for(instance_type)
    if resources is None:
        return None
    count = resources.gpus
    if count and (count < 1 or count != int(count)):
        return GpuDemand(count, f"{instance_type} ({count:g} GPU)")
    plural = "" if count == 1 else "s"
    return GpuDemand(count, f"{instance_type} ({count:g} GPU{plural} an instance)")


def _per_instance(value: str) -> float:
    """``BATCHTRANSFORM_GPUS_PER_INSTANCE`` as a number: whole, or a fraction below 1."""
    field = f"Environment.{PER_INSTANCE_VARIABLE}"
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0) or (number > 1 and number != int(number)):
        raise ValidationError(
            f"{PER_INSTANCE_VARIABLE}={value!r} must be a whole number of GPUs, or a fraction "
            "below 1 for instances of the job to share a GPU (0.5: two instances a GPU)",
            field,
        )
    return number


def machine_gpus() -> tuple[str, ...]:
    """The GPUs this machine offers instances: ``BATCHTRANSFORM_GPUS`` if set, else what
    ``nvidia-smi -L`` lists (none when it is missing or fails)."""
    named = os.environ.get(GPUS_VARIABLE)
    if named is not None:
        found = [part.strip() for part in named.split(",") if part.strip()]
        if len(set(found)) != len(found):
            raise ValidationError(f"{GPUS_VARIABLE}={named!r} names a GPU twice", GPUS_VARIABLE)
        return tuple(found)
    return _listed_by_nvidia_smi()


@functools.lru_cache(maxsize=1)
def _listed_by_nvidia_smi() -> tuple[str, ...]:
    try:
        result = subprocess.run(
            ["nvidia-smi", "-L"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if result.returncode != 0:
        return ()
    return tuple(_GPU_LINE.findall(result.stdout))


def describe_machine(gpus: Sequence[str]) -> str:
    """``2 GPUs (0, 1)``, or where none were found, for messages."""
    if not gpus:
        named = os.environ.get(GPUS_VARIABLE)
        return f"no GPU ({GPUS_VARIABLE}={named!r})" if named is not None else "no GPU"
    plural = "" if len(gpus) == 1 else "s"
    return f"{len(gpus)} GPU{plural} ({', '.join(gpus)})"
