"""Small items handed to local instances several at a time, with workers of their own kind
(no data, no model) that write each output as the real worker does, behind the next item:
results in order and exactly once, an instance killed in the middle of its batch, a stop
in the middle of one."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from batchtransform import objects
from batchtransform.executors import Event, EventKind, LocalExecutor
from batchtransform.executors.base import Report


@dataclass(frozen=True)
class Small:
    """A work item that says it is a small whole object, as ``plan.WorkItem`` does."""

    name: str
    small: bool = True


@dataclass
class Writes:
    """Builds workers that write ``out:<name>`` to ``<folder>/<name>.out`` atomically, on
    a thread behind the next item when the executor takes futures (``commit_behind``).
    An item named ``kill`` SIGKILLs its instance the first time (a marker file), once the
    items before it in its batch are done or being written; ``pause`` seconds per item."""

    folder: str
    pause: float = 0.0
    commit_behind: bool = False

    def __call__(self, index: int) -> Writes:
        return self

    def start(self) -> None:
        self.pool = ThreadPoolExecutor(4)

    def process(self, item: Small, report: Report) -> str | Future[str]:
        time.sleep(self.pause)
        if item.name == "kill" and self._first_time():
            time.sleep(0.2)  # the outputs of the items before it under way or written
            os.kill(os.getpid(), signal.SIGKILL)
        if self.commit_behind:
            return self.pool.submit(self._write, item)
        return self._write(item)

    def _write(self, item: Small) -> str:
        url = str(Path(self.folder) / "out" / f"{item.name}.out")
        objects.write_bytes(url, f"out:{item.name}".encode())
        return f"wrote {item.name}"

    def stop(self) -> None:
        self.pool.shutdown(wait=True)

    def _first_time(self) -> bool:
        try:
            os.close(os.open(Path(self.folder) / "killed", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return False
        return True


def _run(worker: Writes, items: list[Small], instances: int, stop_after: int = 0) -> list[Event]:
    """The events of a run, which is stopped once ``stop_after`` items are done (0: never)."""
    events: list[Event] = []
    lock = threading.Lock()

    def on_event(event: Event) -> None:
        with lock:
            events.append(event)

    def should_stop() -> bool:
        return bool(stop_after) and len(_of(EventKind.ITEM_DONE, events)) >= stop_after

    finished = LocalExecutor(grace_seconds=5).run(items, worker, instances, on_event, should_stop)
    assert finished == (not stop_after)
    return events


def _of(kind: EventKind, events: list[Event]) -> list[Event]:
    return [event for event in events if event.kind == kind]


def _names(count: int) -> list[Small]:
    return [Small(f"item-{n:02d}") for n in range(count)]


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "out").iterdir())}


def test_small_items_go_out_several_at_once_and_come_back_in_order(tmp_path: Path) -> None:
    items = _names(20)
    events = _run(Writes(str(tmp_path), commit_behind=True), items, 1)

    started = [event.item for event in _of(EventKind.ITEM_STARTED, events)]
    done = [event.item for event in _of(EventKind.ITEM_DONE, events)]
    assert started == items and done == items, "each once, in order"
    first_done = next(n for n, e in enumerate(events) if e.kind == EventKind.ITEM_DONE)
    assert len(_of(EventKind.ITEM_STARTED, events[:first_done])) > 1, "handed out together"
    assert _outputs(tmp_path) == {f"{i.name}.out": f"out:{i.name}".encode() for i in items}


def test_an_instance_killed_in_the_middle_of_its_batch_runs_each_item_once(
    tmp_path: Path,
) -> None:
    """The killed instance held the items after ``kill`` (sent, not begun) and the outputs
    of those before it (written behind, not yet reported): each item is reported done
    exactly once, by one instance or the other, and every output is exact."""
    items = [*_names(6), Small("kill"), *(Small(f"late-{n:02d}") for n in range(20))]
    events = _run(Writes(str(tmp_path), pause=0.02, commit_behind=True), items, 2)

    [lost] = _of(EventKind.INSTANCE_LOST, events)
    assert lost.item is not None and "killed by SIGKILL" in lost.detail
    done = sorted(event.item.name for event in _of(EventKind.ITEM_DONE, events))
    assert done == sorted(item.name for item in items), "every item done exactly once"
    assert _of(EventKind.ITEM_LOST, events) == []
    assert _outputs(tmp_path) == {f"{i.name}.out": f"out:{i.name}".encode() for i in items}
    assert not list((tmp_path / "out").glob(".*")), "no partial output left"


def test_a_stop_in_the_middle_of_a_batch_leaves_only_whole_outputs(tmp_path: Path) -> None:
    items = _names(40)
    events = _run(Writes(str(tmp_path), pause=0.05, commit_behind=True), items, 2, stop_after=4)

    written = _outputs(tmp_path)
    assert 4 <= len(written) < len(items)
    assert all(
        body == f"out:{name.removesuffix('.out')}".encode() for name, body in written.items()
    )
    assert not list((tmp_path / "out").glob(".*")), "no partial output left"
    reported = {event.item.name for event in _of(EventKind.ITEM_DONE, events)}
    assert {f"{name}.out" for name in reported} <= set(written), "reported means written"
