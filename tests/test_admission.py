"""The machine-wide queue: tickets in creation order, slots held with file locks, and places
that come back when their holder is SIGKILLed. Holders run in processes of their own, as
controllers do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lifecycle import alive

from batchtransform.admission import (
    START_GRACE_SECONDS,
    AdmissionQueue,
    Placement,
    default_max_instances,
    max_instances,
)
from batchtransform.errors import ValidationError

# Joins the queue for a job, takes N slots of a cap of 2 (and GPUs), says so, then waits.
_HOLDER = """
import sys, time
from pathlib import Path
from batchtransform.admission import AdmissionQueue, Placement
queue = AdmissionQueue(Path(sys.argv[1]))
ticket = queue.join(sys.argv[2], float(sys.argv[3]))
print("joined", flush=True)
if sys.argv[4] != "wait":
    placement = Placement(int(sys.argv[4]), 2, gpus=int(sys.argv[5]), machine_gpus=("0", "1"))
    grant = queue.admit(ticket, placement, lambda: False, lambda position, reason: None, 0.02)
    print("admitted", grant.slots, grant.gpus, flush=True)
time.sleep(600)
"""


class Holder:
    """A process that holds a ticket, or slots, until it is killed."""

    def __init__(self, folder: Path, job: str, created: float, slots: int | None, gpus: int = 0):
        mode = "wait" if slots is None else str(slots)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(folder), job, str(created), mode, str(gpus)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.said = [self.process.stdout.readline().strip()]
        if slots is not None:
            self.said.append(self.process.stdout.readline().strip())

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        if holder.process.poll() is None:
            holder.kill()
    assert not any(alive(holder.process.pid) for holder in started)


def waits(
    queue: AdmissionQueue, job: str, created: float, placement: Placement, rounds: int = 3
) -> list[tuple[int, str]]:
    """What ``admit`` says over a few rounds of waiting, then gives up (stops)."""
    said: list[tuple[int, str]] = []
    with queue.join(job, created) as ticket:
        grant = queue.admit(ticket, placement, lambda: len(said) >= rounds, _noting(said), 0.01)
    assert grant is None, "admitted, though it should have waited"
    return said


def _noting(said: list[tuple[int, str]]) -> Callable[[int, str], None]:
    return lambda position, reason: said.append((position, reason))


def test_slots_are_held_until_released(tmp_path: Path) -> None:
    queue = AdmissionQueue(tmp_path)
    with queue.join("a", 1.0) as ticket:
        grant = queue.admit(ticket, Placement(2, 2), lambda: False, _noting([]))
    assert grant is not None and sorted(grant.slots) == [0, 1]
    assert queue.held_slots(2) == 2
    said = waits(queue, "b", 2.0, Placement(1, 2))
    assert said[0] == (
        1,
        "waiting for 1 instance slot (2 of BATCHTRANSFORM_MAX_INSTANCES=2 in use)",
    )
    grant.release()
    assert queue.held_slots(2) == 0
    with queue.join("b", 2.0) as ticket:
        second = queue.admit(ticket, Placement(1, 2), lambda: False, _noting([]))
    assert second is not None and second.slots == [0]
    second.release()


def test_jobs_wait_in_creation_order(tmp_path: Path, holders: list[Holder]) -> None:
    queue = AdmissionQueue(tmp_path)
    holders.append(Holder(tmp_path, "first", 100.0, None))  # in line, not admitted
    holders.append(Holder(tmp_path, "second", 200.0, None))
    assert waits(queue, "third", 300.0, Placement(1, 2))[0] == (3, "2 jobs ahead in the queue")
    holders[0].kill()  # a ticket whose controller died is passed over
    assert waits(queue, "third", 300.0, Placement(1, 2))[0] == (2, "1 job ahead in the queue")
    # A job created earlier than every ticket in line is ahead of them all.
    with queue.join("zeroth", 50.0) as ticket:
        grant = queue.admit(ticket, Placement(1, 2), lambda: False, _noting([]))
    assert grant is not None
    grant.release()


def test_a_killed_holders_slots_and_gpus_come_back(tmp_path: Path, holders: list[Holder]) -> None:
    queue = AdmissionQueue(tmp_path)
    holders.append(Holder(tmp_path, "big", 1.0, 2, gpus=2))
    assert holders[0].said == ["joined", "admitted [0, 1] ['0', '1']"]
    placement = Placement(1, 2, gpus=1, machine_gpus=("0", "1"))
    assert waits(queue, "next", 2.0, placement)[0][1] == (
        "waiting for 1 instance slot (2 of BATCHTRANSFORM_MAX_INSTANCES=2 in use) "
        "and 1 GPUs (0 of 2 free)"
    )
    holders[0].kill()
    with queue.join("next", 2.0) as ticket:
        grant = queue.admit(ticket, placement, lambda: False, _noting([]))
    assert grant is not None and (grant.slots, grant.gpus) == ([0], ["0"])
    grant.release()


def test_a_ticket_written_for_a_controller_that_never_came_expires(tmp_path: Path) -> None:
    queue = AdmissionQueue(tmp_path)
    queue.enqueue("launched", 1.0)  # the service's side: no controller has locked it yet
    assert waits(queue, "later", 2.0, Placement(1, 2))[0] == (2, "1 job ahead in the queue")
    stale = time.time() - START_GRACE_SECONDS - 1
    os.utime(queue.ticket_path("launched", 1.0), (stale, stale))
    with queue.join("later", 2.0) as ticket:
        grant = queue.admit(ticket, Placement(1, 2), lambda: False, _noting([]))
    assert grant is not None
    grant.release()
    assert not queue.ticket_path("launched", 1.0).exists()


def test_a_dead_controllers_ticket_made_new_waits_for_the_next(
    tmp_path: Path, holders: list[Holder]
) -> None:
    """A resumed job: its first controller died in line, and the service launches another."""
    queue = AdmissionQueue(tmp_path)
    holders.append(Holder(tmp_path, "resumed", 1.0, None))
    holders[0].kill()
    queue.enqueue("resumed", 1.0)
    assert waits(queue, "later", 2.0, Placement(1, 2))[0] == (2, "1 job ahead in the queue")


def test_a_withdrawn_ticket_is_gone(tmp_path: Path) -> None:
    queue = AdmissionQueue(tmp_path)
    queue.enqueue("a", 1.0)
    queue.withdraw("a", 1.0)
    assert list((tmp_path / "queue").iterdir()) == []


def test_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_MAX_INSTANCES", "7")
    assert max_instances() == 7
    monkeypatch.delenv("BATCHTRANSFORM_MAX_INSTANCES")
    cores = len(os.sched_getaffinity(0))
    assert max_instances() == default_max_instances()
    assert 1 <= default_max_instances() <= cores
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv("BATCHTRANSFORM_MAX_INSTANCES", bad)
        with pytest.raises(ValidationError, match=f"BATCHTRANSFORM_MAX_INSTANCES='{bad}'"):
            max_instances()
