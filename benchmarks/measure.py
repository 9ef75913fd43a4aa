"""How a run is measured: wall time, peak memory per process, time to the first output byte.

Memory is each process's peak resident set (``VmHWM`` in /proc), sampled while it runs;
for a job, the processes are the controller's children (its instances).
"""

from __future__ import annotations

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
    process.wait()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed with status {process.returncode}")
    return Measurement(seconds=elapsed, peak_rss_mib=max(peaks))


@dataclass
class Sampler:
    """Samples a job while it runs: its instances' peak memory and the first output byte."""

    output: Path
    controller_pid: Callable[[], int | None]
    started: float = field(default_factory=time.perf_counter)
    result: Measurement = field(default_factory=Measurement)
    _stop: threading.Event = field(default_factory=threading.Event)
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

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            if self.result.first_byte_seconds is None and _has_bytes(self.output):
                self.result.first_byte_seconds = time.perf_counter() - self.started
            pid = self.controller_pid()
            for child in _children(pid) if pid else []:
                self.result.peak_rss_mib = max(self.result.peak_rss_mib, _peak_rss_mib(child))


def _has_bytes(folder: Path) -> bool:
    if not folder.exists():
        return False
    return any(p.is_file() and p.stat().st_size > 0 for p in folder.rglob("*"))


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
