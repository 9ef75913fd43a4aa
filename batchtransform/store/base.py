"""The store's contract: models and transform jobs, persisted.

A store keeps what the service decides; it enforces uniqueness of names and the
conditional status update that ``jobs.transition`` relies on, nothing else.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelRecord:
    name: str
    arn: str
    creation_time: float
    request: dict[str, Any]


@dataclass(frozen=True)
class JobRecord:
    """A transform job as stored. ``request`` is the CreateTransformJob document as sent."""

    name: str
    arn: str
    model_name: str
    status: str
    creation_time: float
    last_modified_time: float
    request: dict[str, Any]
    model: dict[str, Any] = field(default_factory=dict)  # the CreateModel document at create time
    start_time: float | None = None
    end_time: float | None = None
    failure_reason: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    controller_pid: int | None = None
    controller_host: str | None = None  # where controller_pid runs; None: not recorded


@dataclass(frozen=True)
class CommitRecord:
    """One work item's committed output: ``item_key`` is ``WorkItem.key``, ``stamp`` the
    output's size and ETag or modification time then (``objects.stamp``), ``counters``
    the item's records, bytes and failed records."""

    job_name: str
    item_key: str
    output_url: str
    stamp: str
    counters: dict[str, int]
    committed_time: float


@dataclass(frozen=True)
class SampleRecord:
    """One telemetry sample of a job at ``time`` (epoch seconds). ``instance`` is the
    instance's name as its log streams have it (``instance-1``), or ``""`` for the whole
    job; ``values`` are what was measured then (cumulative counts for the whole job, CPU
    and memory for an instance), so a reader computes rates from two samples."""

    job_name: str
    time: float
    instance: str
    values: dict[str, float]


@dataclass(frozen=True)
class Query:
    """Filters, order and page of a list call. ``sort_by`` is a record attribute name."""

    name_contains: str | None = None
    status_equals: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    modified_after: float | None = None
    modified_before: float | None = None
    sort_by: str = "creation_time"
    descending: bool = True
    offset: int = 0
    limit: int = 10


class Store(abc.ABC):
    """Persistence of models and jobs. Implementations must be safe across processes."""

    @abc.abstractmethod
    def add_model(self, record: ModelRecord) -> bool:
        """Insert a model; False if the name exists already."""

    @abc.abstractmethod
    def get_model(self, name: str) -> ModelRecord | None:
        """The model of that name, or None."""

    @abc.abstractmethod
    def list_models(self, query: Query) -> Sequence[ModelRecord]:
        """Models matching ``query`` (status filters do not apply), in its order and page."""

    @abc.abstractmethod
    def delete_model(self, name: str) -> bool:
        """Remove a model; False if there was none."""

    @abc.abstractmethod
    def add_job(self, record: JobRecord) -> bool:
        """Insert a job; False if the name exists already."""

    @abc.abstractmethod
    def get_job(self, name: str) -> JobRecord | None:
        """The job of that name, or None."""

    @abc.abstractmethod
    def list_jobs(self, query: Query) -> Sequence[JobRecord]:
        """Jobs matching ``query``, in its order and page."""

    @abc.abstractmethod
    def update_job(
        self, name: str, when_status_in: Collection[str] | None = None, **fields: Any
    ) -> bool:
        """Set ``fields`` on a job, only if its status is in ``when_status_in`` (when given).

        Atomic: the check and the write happen in one statement. Returns whether it wrote.
        """

    @abc.abstractmethod
    def record_commits(self, commits: Sequence[CommitRecord]) -> None:
        """Save committed outputs, replacing any earlier row of the same job and item key."""

    @abc.abstractmethod
    def list_commits(self, job_name: str) -> Sequence[CommitRecord]:
        """Every committed output recorded for the job."""

    @abc.abstractmethod
    def add_samples(self, samples: Sequence[SampleRecord]) -> None:
        """Save telemetry samples (several jobs' at once if need be), in one transaction."""

    @abc.abstractmethod
    def list_samples(self, job_name: str, since: float | None = None) -> Sequence[SampleRecord]:
        """The job's samples taken after ``since`` (all when None), ordered by time."""
