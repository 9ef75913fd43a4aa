"""The local executor with workers of its own kind (no data, no model): deaths handled
once, items run again elsewhere up to the limit, a worker that gives up, and counts."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from batchtransform.errors import InstanceLostError
from batchtransform.executors import Event, EventKind, LocalExecutor
from batchtransform.executors.base import MAX_ATTEMPTS, Report


@dataclass(frozen=True)
class Dies:
    """Builds workers that SIGKILL their own process on ``fatal`` items: the first time
    only when ``once`` (a marker file per item), else every time; ``lost`` items make the
    worker give up (InstanceLostError) instead."""

    folder: str
    fatal: frozenset[str] = frozenset()
    lost: frozenset[str] = frozenset()
    once: bool = True

    def __call__(self, index: int) -> Dies:
        return self

    def start(self) -> None:
        pass

    def process(self, item: str, report: Report) -> str:
        if item in self.lost:
            raise InstanceLostError(f"cannot serve {item}", attempts=2)
        if item in self.fatal and self._first_time(item):
            os.kill(os.getpid(), signal.SIGKILL)
        return f"done:{item}"

    def stop(self) -> None:
        pass

    def _first_time(self, item: str) -> bool:
        if not self.once:
            return True
        try:
            os.close(os.open(Path(self.folder) / item, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True


def run(factory: Dies, items: list[str], instances: int) -> list[Event]:
    events: list[Event] = []
    finished = LocalExecutor(grace_seconds=5).run(
        items, factory, instances, events.append, lambda: False
    )
    assert finished
    return events


def of(kind: EventKind, events: list[Event]) -> list[Event]:
    return [event for event in events if event.kind == kind]


def test_one_death_is_handled_once_and_its_item_runs_once_more(tmp_path: Path) -> None:
    items = [f"item-{n}" for n in range(6)]
    events = run(Dies(str(tmp_path), fatal=frozenset({"item-1"})), items, 2)

    [lost] = of(EventKind.INSTANCE_LOST, events)
    assert lost.item == "item-1" and "killed by SIGKILL" in lost.detail
    done = sorted(event.item for event in of(EventKind.ITEM_DONE, events))
    assert done == items, "every item done exactly once"
    assert of(EventKind.ITEM_LOST, events) == []
    ready = [event.instance for event in of(EventKind.READY, events)]
    assert sorted(ready) == [1, 2, 3], "one replacement, numbered after the others"


def test_an_item_that_kills_every_instance_is_lost_after_its_tries(tmp_path: Path) -> None:
    items = ["good-1", "bad", "good-2"]
    events = run(Dies(str(tmp_path), fatal=frozenset({"bad"}), once=False), items, 2)

    assert len(of(EventKind.INSTANCE_LOST, events)) == MAX_ATTEMPTS
    [lost] = of(EventKind.ITEM_LOST, events)
    assert lost.item == "bad" and lost.detail.endswith(f"(tried {MAX_ATTEMPTS} times)")
    assert sorted(event.item for event in of(EventKind.ITEM_DONE, events)) == ["good-1", "good-2"]


def test_a_worker_that_gives_up_is_replaced_and_its_limit_kept(tmp_path: Path) -> None:
    events = run(Dies(str(tmp_path), lost=frozenset({"stuck"})), ["a", "stuck", "b"], 1)

    deaths = of(EventKind.INSTANCE_LOST, events)
    assert [event.detail for event in deaths] == ["cannot serve stuck"] * 2
    [lost] = of(EventKind.ITEM_LOST, events)
    assert lost.item == "stuck" and lost.detail == "cannot serve stuck (tried 2 times)"
    assert sorted(event.item for event in of(EventKind.ITEM_DONE, events)) == ["a", "b"]
