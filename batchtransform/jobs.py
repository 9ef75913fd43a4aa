"""Transform job statuses and the one function that changes them.

A job is InProgress from the moment it is created (SageMaker has no Pending), and ends
Completed, Failed or, through Stopping, Stopped. A Failed or Stopped job may be resumed
(``ResumeTransformJob``, ours): it goes back to InProgress, and only its work without a
committed output runs again. Every change goes through ``transition``,
which persists it with a conditional update so that two writers (a stop request and the
controller finishing) cannot both win.
"""

from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchtransform.store import Store


class JobStatus(str, enum.Enum):
    """TransformJobStatus, spelled as the API spells it."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED})

# status -> the statuses a job may move to from it
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.IN_PROGRESS: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPING}),
    JobStatus.STOPPING: frozenset({JobStatus.STOPPED, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset({JobStatus.IN_PROGRESS}),  # resumed
    JobStatus.STOPPED: frozenset({JobStatus.IN_PROGRESS}),  # resumed
}

FAILURE_REASON_MAX = 1024


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    """The statuses from which a job may move to ``target``."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


def transition(store: Store, name: str, target: JobStatus, **fields: Any) -> bool:
    """Move job ``name`` to ``target`` if its current status allows it; persist and say so.

    Terminal statuses stamp TransformEndTime; a FailureReason is cut to the API's 1024
    characters. Returns False (and changes nothing) when the job is in a status that does
    not lead to ``target``, e.g. a stop racing a completion.
    """
    now = time.time()
    fields["last_modified_time"] = now
    if target.terminal:
        fields.setdefault("end_time", now)
    reason = fields.get("failure_reason")
    if reason is not None and len(reason) > FAILURE_REASON_MAX:
        fields["failure_reason"] = reason[: FAILURE_REASON_MAX - 3] + "..."
    return store.update_job(name, sources_of(target), status=target.value, **fields)


def seconds_left(elapsed: float, done: int, total: int) -> float | None:
    """A running job's time left, from the objects left at the pace objects have ended so
    far (its input's object count is known, its bytes are not); None before the first
    object ends and once all have."""
    if not done or not total or done >= total:
        return None
    return elapsed * (total - done) / done
