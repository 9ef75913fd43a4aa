"""The contract every model runtime keeps.

A runtime is one running copy of a model inside one instance: ``start`` once, ask
``execution_parameters`` once, then ``invoke`` many times (from several threads at once, up
to MaxConcurrentTransforms), and ``stop`` once at the end, also after a failure.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

DEFAULT_INVOCATION_TIMEOUT = 600.0
DEFAULT_STARTUP_TIMEOUT = 600.0
STARTUP_TIMEOUT_ENV = "BATCHTRANSFORM_STARTUP_TIMEOUT"  # overrides the default, in seconds


@dataclass(frozen=True)
class ExecutionParameters:
    """What a model may say about how it wants to be called (GET /execution-parameters).

    ``batch_strategy`` is normalised to the API spelling (``MultiRecord``/``SingleRecord``).
    """

    max_concurrent_transforms: int | None = None
    batch_strategy: str | None = None
    max_payload_in_mb: int | None = None


@dataclass(frozen=True)
class RuntimeContext:
    """Everything a runtime needs to start, built by the instance.

    ``model_dir`` holds the unpacked ModelDataUrl (SageMaker's /opt/ml/model).
    ``environment`` is the container's environment for this job: the model's Environment,
    the batch variables, then the job's Environment, in that order of precedence.
    ``log`` receives the model's own output lines (the instance log).
    ``invocation_timeout`` bounds each invocation (ModelClientConfig.InvocationsTimeoutInSeconds)
    and ``startup_timeout`` the wait for a model server to become healthy; a runtime that
    calls its model in-process ignores both (the instance's watchdog bounds its calls).
    ``name`` tells this container's lines apart in a shared log: empty for a single
    container, its ContainerHostname (or ``container-N``) in an inference pipeline.
    ``notice`` writes a line to the instance's data-log, for what the platform does on the
    model's behalf (such as installing its requirements.txt); None when there is no log.
    """

    image: str
    model_dir: Path
    environment: Mapping[str, str] = field(default_factory=dict)
    log: TextIO | None = None
    invocation_timeout: float = DEFAULT_INVOCATION_TIMEOUT
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    name: str = ""
    notice: Callable[[str], None] | None = None


class Runtime(abc.ABC):
    """One running model. Subclasses document how they map the SageMaker container contract.

    ``bounds_invocations`` says whether ``invoke`` itself keeps to ``invocation_timeout`` (a
    server's client does); where it does not (a handler called in-process), the instance
    watches each call and ends itself when one outlives the timeout.
    """

    bounds_invocations = False

    def __init__(self, context: RuntimeContext) -> None:
        self.context = context

    @abc.abstractmethod
    def start(self) -> None:
        """Load or launch the model and return once it can serve.

        Raises RuntimeStartError with a reason a user can act on.
        """

    def execution_parameters(self) -> ExecutionParameters | None:
        """The model's preferred batching parameters, or None when it has none."""
        return None

    @abc.abstractmethod
    def invoke(self, payload: bytes, content_type: str | None, accept: str | None) -> bytes:
        """Run one mini-batch through the model and return the response body.

        Must be safe to call from several threads at once. Raises ModelError when the model
        fails the request (with its status and the start of its error body).
        """

    def invoke_with_type(
        self, payload: bytes, content_type: str | None, accept: str | None
    ) -> tuple[bytes, str | None]:
        """``invoke``, plus the response's content type where the runtime knows it (a
        server's Content-Type header): an inference pipeline hands it to the next container."""
        return self.invoke(payload, content_type, accept), None

    def alive(self) -> bool:
        """False once the model is known to be gone (its server exited): the instance then
        restarts the runtime. An in-process model lives as long as the instance does."""
        return True

    @abc.abstractmethod
    def stop(self) -> None:
        """Release the model. Safe to call more than once, and after a failed start."""
