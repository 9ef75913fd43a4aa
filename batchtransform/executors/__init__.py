"""Where instances run, behind one interface (``base.Executor``), chosen by name.

``local`` (processes on this machine, the default) or ``ray`` (actors on a Ray cluster),
named by ``BATCHTRANSFORM_EXECUTOR``; ``create_executor`` reads it in the controller, so an
embedded ``Session`` and ``batchtransform server --executor ray`` choose the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from batchtransform.errors import ExecutorError
from batchtransform.executors.base import Event, EventKind, Executor, Worker, WorkerFactory
from batchtransform.executors.local import LocalExecutor

__all__ = [
    "EXECUTORS",
    "EXECUTOR_VARIABLE",
    "Event",
    "EventKind",
    "Executor",
    "LocalExecutor",
    "Worker",
    "WorkerFactory",
    "create_executor",
]

EXECUTOR_VARIABLE = "BATCHTRANSFORM_EXECUTOR"
EXECUTORS = ("local", "ray")


def create_executor(name: str | None = None) -> Executor:
    """The executor ``name`` (default: ``BATCHTRANSFORM_EXECUTOR``, else ``local``).

    The Ray executor is built without importing Ray, which it loads when it runs: a job
    on a machine without the extra fails with a reason that names it. An unknown name
    gives an executor whose every job fails at once, naming the setting.
    """
    chosen = (name or os.environ.get(EXECUTOR_VARIABLE) or "local").strip().lower()
    if chosen == "local":
        return LocalExecutor()
    if chosen == "ray":
        from batchtransform.executors.ray import RayExecutor

        return RayExecutor()
    return _Unknown(chosen)


class _Unknown(Executor):
    """Stands for an executor name that none answers to: its jobs fail, naming it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(
        self,
        items: Sequence[Any],
        factory: WorkerFactory,
        instance_count: int,
        on_event: Callable[[Event], None],
        should_stop: Callable[[], bool],
    ) -> bool:
        choices = " or ".join(EXECUTORS)
        raise ExecutorError(f"{EXECUTOR_VARIABLE}={self.name!r} names no executor: use {choices}")
