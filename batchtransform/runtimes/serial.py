"""An inference pipeline (CreateModel with ``Containers``, §7.6): several runtimes in series
inside one instance, each response becoming the next container's request.

SageMaker does not document how content types travel between containers. We do what its
pipeline examples rely on (preprocessing containers configured with
``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, output_fn setting the response's content type):

* the first container gets the job's ContentType;
* every later container gets, as its Content-Type, the content type of the response before
  it: the server's Content-Type header, or what the in-process handlers answered with
  (``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` of that container, else application/json, when
  they did not say);
* only the last container gets the job's Accept; the others get no Accept, so each answers
  in its own default type (``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``).

Containers may be of any runtime. Those that run in-process share the instance's process,
so where two set the same environment variable, both see the value of the one started
last. Containers start in order and stop in reverse order. Their
``/execution-parameters`` are merged so that no container is asked for more than it said
it takes: the smallest MaxConcurrentTransforms and MaxPayloadInMB any of them gave, and
SingleRecord if any asked for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from batchtransform.errors import ModelError, RuntimeStartError
from batchtransform.runtimes import media
from batchtransform.runtimes.base import ExecutionParameters, Runtime

__all__ = ["SerialRuntime", "merge_execution_parameters"]

_SINGLE_RECORD = "SingleRecord"


class SerialRuntime(Runtime):
    """Runs ``stages`` in series; its ``context`` is the first stage's (where input enters)."""

    def __init__(self, stages: Sequence[Runtime]) -> None:
        if not stages:
            raise ValueError("an inference pipeline needs at least one container")
        super().__init__(stages[0].context)
        self.stages = tuple(stages)
        self.bounds_invocations = all(stage.bounds_invocations for stage in self.stages)

    def start(self) -> None:
        """Start every container in order; if one fails, stop those started and say which."""
        for number, stage in enumerate(self.stages, 1):
            try:
                stage.start()
            except RuntimeStartError as exc:
                self.stop()
                raise RuntimeStartError(f"{self._label(number)}: {exc.message}") from exc
            except BaseException:
                self.stop()
                raise

    def execution_parameters(self) -> ExecutionParameters | None:
        found = [stage.execution_parameters() for stage in self.stages]
        return merge_execution_parameters([p for p in found if p is not None])

    def invoke(self, payload: bytes, content_type: str | None, accept: str | None) -> bytes:
        return self.invoke_with_type(payload, content_type, accept)[0]

    def invoke_with_type(
        self, payload: bytes, content_type: str | None, accept: str | None
    ) -> tuple[bytes, str | None]:
        """The mini-batch through every container; a failure names the container."""
        body, body_type = payload, content_type
        last = len(self.stages)
        for number, stage in enumerate(self.stages, 1):
            stage_accept = accept if number == last else None
            try:
                body, answered = stage.invoke_with_type(body, body_type, stage_accept)
            except ModelError as exc:
                message = f"{self._label(number)}: {exc.message}"
                raise ModelError(message, status=exc.model_status, body=exc.body) from exc
            body_type = answered or media.resolve_accept(None, stage.context.environment)
        return body, body_type

    def alive(self) -> bool:
        """Whether every container is; the instance restarts them all when one has died."""
        return all(stage.alive() for stage in self.stages)

    def stop(self) -> None:
        """Stop every container, last first; the first error, if any, is raised at the end."""
        failure: Exception | None = None
        for stage in reversed(self.stages):
            try:
                stage.stop()
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _label(self, number: int) -> str:
        stage = self.stages[number - 1]
        name = stage.context.name or f"container-{number}"
        return f"container {number} of {len(self.stages)} ({name}, {stage.context.image})"


def merge_execution_parameters(
    found: Sequence[ExecutionParameters],
) -> ExecutionParameters | None:
    """One set of parameters that every container accepts, or None if none gave any."""
    if not found:
        return None
    concurrency = [p.max_concurrent_transforms for p in found if p.max_concurrent_transforms]
    payloads = [p.max_payload_in_mb for p in found if p.max_payload_in_mb is not None]
    strategies = {p.batch_strategy for p in found if p.batch_strategy}
    strategy = _SINGLE_RECORD if _SINGLE_RECORD in strategies else next(iter(strategies), None)
    return ExecutionParameters(
        max_concurrent_transforms=min(concurrency, default=None),
        batch_strategy=strategy,
        max_payload_in_mb=_smallest_payload(payloads),
    )


def _smallest_payload(payloads: list[int]) -> int | None:
    """The smallest limit; 0 means unlimited, so it counts only when every container says 0."""
    limited = [p for p in payloads if p > 0]
    if limited:
        return min(limited)
    return 0 if payloads else None
