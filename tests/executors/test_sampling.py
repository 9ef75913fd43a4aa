"""An instance's CPU and memory as its sampler measures them: the whole process tree
(a child that burns CPU and holds memory counts), CPU as percent of one core over the
interval, memory against the limit given; the thread sends until told to stop."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

from batchtransform.executors.sampling import InstanceSampler, memory_limit
from batchtransform.instance import InstanceFactory

# Holds 200 MiB, then, once told, burns half a second of CPU, says so, and sleeps.
CHILD = """
import sys, time
held = bytearray(200 * 2**20)
for i in range(0, len(held), 4096):
    held[i] = 1
print("ready", flush=True)
sys.stdin.readline()
start = time.process_time()
while time.process_time() - start < 0.5:
    pass
print("done", flush=True)
time.sleep(60)
"""


def test_the_tree_is_measured_child_included(tmp_path: Path) -> None:
    with subprocess.Popen(  # the instance: a shell whose child does the work
        ["/bin/sh", "-c", f"\"{sys.executable}\" -c '{CHILD}'"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as leader:
        try:
            measure(leader)
        finally:
            for process in psutil.Process(leader.pid).children(recursive=True):
                process.kill()
            leader.kill()


def measure(leader: subprocess.Popen[str]) -> None:
    assert leader.stdin is not None and leader.stdout is not None
    assert leader.stdout.readline() == "ready\n"
    began = time.monotonic()
    sampler = InstanceSampler(lambda values: None, 2**40, pid=leader.pid)
    leader.stdin.write("go\n")
    leader.stdin.flush()
    assert leader.stdout.readline() == "done\n"
    values = sampler.sample()
    elapsed = time.monotonic() - began  # at least the sampler's own interval
    # the half second of CPU the child burnt between the two samples, less the kernel's
    # clock ticks (10 ms each) that its CPU times are counted in, at each end
    assert values["cpu_percent"] * elapsed / 100 >= 0.5 - 0.03
    assert values["memory_bytes"] >= 200 * 2**20
    assert values["memory_percent"] == round(values["memory_bytes"] / 2**40 * 100, 3)
    assert abs(values["time"] - time.time()) < 5
    time.sleep(0.5)
    idle = sampler.sample()  # a sleeping tree since
    assert idle["cpu_percent"] < 50


def test_the_thread_sends_every_interval_until_stopped() -> None:
    sent: list[dict[str, float]] = []
    sampler = InstanceSampler(sent.append, 2**40, interval=0.05).start()
    deadline = time.monotonic() + 10
    while len(sent) < 3:
        assert time.monotonic() < deadline, "no samples"
        time.sleep(0.01)
    sampler.stop()
    time.sleep(0.2)
    count = len(sent)
    time.sleep(0.2)
    assert len(sent) == count
    assert set(sent[0]) == {"time", "cpu_percent", "memory_percent", "memory_bytes"}


def test_a_sender_that_fails_ends_the_thread() -> None:
    calls = []

    def broken(values: dict[str, float]) -> None:
        calls.append(values)
        raise OSError("the pipe is closed")

    sampler = InstanceSampler(broken, 2**40, interval=0.02).start()
    sampler._thread.join(timeout=10)
    assert not sampler._thread.is_alive() and len(calls) == 1


def test_the_memory_limit_is_the_smallest_known() -> None:
    machine = psutil.virtual_memory().total
    assert memory_limit() <= machine
    job = type("Job", (), {"instance_type": "ml.m5.large", "environment": {}})()
    factory = InstanceFactory(job, None)  # type: ignore[arg-type]
    assert memory_limit(factory) == min(memory_limit(), 8 * 2**30)  # ml.m5.large: 8 GiB
