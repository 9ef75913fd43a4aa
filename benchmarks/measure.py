"""How a run is measured: wall time, CPU time, peak memory per process, first output byte.

Memory is each process's peak resident set (``VmHWM`` in /proc), sampled while it runs;
for a job, the processes are its controller and every process under it (instances, model
servers). CPU time is their user and system time together, so CPU time over wall time is
how many cores the run kept busy.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_mib: float = 0.0  # the largest peak among the processes measured
    first_byte_seconds: float | None = None
    cpu_seconds: float | None = None  # user + system time of the processes measured

    @property
    def cores(self) -> float | None:
        """How many cores the run kept busy on average."""
        if self.cpu_seconds is None or not self.seconds:
            return None
        return self.cpu_seconds / self.seconds


def run_program(command: list[str]) -> Measurement:
    """Run a program to its end; its wall time and peak memory.

    The peak is the program's own ``VmHWM``, sampled while it runs: the kernel's rusage
    would also count the memory of this process, from which the program was forked.
    """
    started = time.perf_counter()
    process = subprocess.Popen(command)
    peaks = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peaks.append(_peak_rss_mib(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)  # its own CPU time, which is not inherited
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed with status {process.returncode}")
    cpu = usage.ru_utime + usage.ru_stime
    return Measurement(seconds=elapsed, peak_rss_mib=max(peaks), cpu_seconds=cpu)


@dataclass
class Sampler:
    """Samples a job while it runs: the peak memory and CPU time of its processes, and the
    first output byte. A process's CPU time is its last sample, a few ms short at most."""

    output: Path
    controller_pid: Callable[[], int | None]
    started: float = field(default_factory=time.perf_counter)
    result: Measurement = field(default_factory=Measurement)
    _stop: threading.Event = field(default_factory=threading.Event)
    _cpu_ticks: dict[int, int] = field(default_factory=dict)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.result.seconds = time.perf_counter() - self.started
        self.result.cpu_seconds = sum(self._cpu_ticks.values()) / _TICKS_PER_SECOND

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            if self.result.first_byte_seconds is None and _has_bytes(self.output):
                self.result.first_byte_seconds = time.perf_counter() - self.started
            pid = self.controller_pid()
            for process in _with_descendants(pid) if pid else []:
                self.result.peak_rss_mib = max(self.result.peak_rss_mib, _peak_rss_mib(process))
                ticks = _cpu_ticks(process)
                if ticks is not None:
                    self._cpu_ticks[process] = ticks


def _has_bytes(folder: Path) -> bool:
    if not folder.exists():
        return False
    return any(p.is_file() and p.stat().st_size > 0 for p in folder.rglob("*"))


_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _with_descendants(pid: int) -> list[int]:
    """``pid`` and every process under it."""
    found, waiting = [], [pid]
    while waiting:
        current = waiting.pop()
        found.append(current)
        waiting.extend(_children(current))
    return found


def _cpu_ticks(pid: int) -> int | None:
    """User plus system time of ``pid`` so far, in clock ticks (fields 14 and 15 of stat)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def raw_read_seconds(paths: list[Path], chunk: int = 1 << 20) -> float:
    """Reading the same bytes with nothing else done: the ceiling for any pipeline."""
    started = time.perf_counter()
    for path in paths:
        with path.open("rb") as stream:
            while stream.read(chunk):
                pass
    return time.perf_counter() - started


def raw_copy_seconds(paths: list[Path], folder: Path, chunk: int = 1 << 20) -> float:
    """Reading the same bytes and writing them back out: what an identity job cannot beat,
    since it must write every byte it reads."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for path in paths:
        with path.open("rb") as source, (folder / f"{path.name}.copy").open("wb") as target:
            while block := source.read(chunk):
                target.write(block)
    return time.perf_counter() - started
