"""Where instances run, behind one interface (``base.Executor``)."""

from batchtransform.executors.base import Event, EventKind, Executor, Worker, WorkerFactory
from batchtransform.executors.local import LocalExecutor

__all__ = ["Event", "EventKind", "Executor", "LocalExecutor", "Worker", "WorkerFactory"]
