"""Job logs as files, laid out like SageMaker's CloudWatch streams.

Each instance writes two streams under ``<job folder>/logs/``: ``<stream>.log`` with the
model's own output (stdout and stderr) and ``<stream>.data-log`` with the platform's
data-plane lines, ``<ISO time>:[sagemaker logs]: <message>`` as the service writes them.
``<stream>`` is ``instance-<n>-<epoch seconds>``, so a replaced instance gets a new stream.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from batchtransform import config

DATA_LOG_SUFFIX = ".data-log"
MODEL_LOG_SUFFIX = ".log"


def logs_dir(job_name: str) -> Path:
    path = config.job_dir(job_name) / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def stream_name(index: int) -> str:
    return f"instance-{index}-{int(time.time())}"


def data_log_line(message: str) -> str:
    """One data-log line: ``2024-01-01T00:00:00.000Z:[sagemaker logs]: message``."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return f"{now}:[sagemaker logs]: {message}\n"


class DataLog:
    """Appends data-log lines to one stream; each line is flushed so followers see it."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def write(self, message: str) -> None:
        self._file.write(data_log_line(message))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def redirect_output(path: Path) -> TextIO:
    """Send this process's stdout and stderr (fd 1 and 2, so native code too) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    stream = path.open("a", encoding="utf-8", buffering=1)
    os.dup2(stream.fileno(), 1)
    os.dup2(stream.fileno(), 2)
    return stream


def streams(job_name: str) -> list[Path]:
    """Every log stream of a job, data-logs and model logs, by name."""
    return sorted(p for p in logs_dir(job_name).iterdir() if p.is_file())


def label(path: Path) -> str:
    """A stream as CloudWatch would name it: ``instance-1-1700000000/data-log``."""
    if path.name.endswith(DATA_LOG_SUFFIX):
        return path.name[: -len(DATA_LOG_SUFFIX)] + "/data-log"
    return path.name.removesuffix(MODEL_LOG_SUFFIX)


def follow(
    job_name: str, keep_going: Callable[[], bool], poll_seconds: float = 0.5
) -> Iterator[tuple[str, str]]:
    """Yield ``(stream label, line)`` for every line of every stream, then new ones as they
    come, until ``keep_going()`` is false (checked after each quiet poll) and all is read."""
    offsets: dict[Path, int] = {}
    while True:
        emitted = False
        for path in streams(job_name):
            for line in _new_lines(path, offsets):
                emitted = True
                yield label(path), line
        if not emitted:
            if not keep_going():
                return
            time.sleep(poll_seconds)


def _new_lines(path: Path, offsets: dict[Path, int]) -> Iterator[str]:
    with path.open("rb") as stream:
        stream.seek(offsets.get(path, 0))
        data = stream.read()
    complete = data[: data.rfind(b"\n") + 1]
    offsets[path] = offsets.get(path, 0) + len(complete)
    yield from complete.decode("utf-8", "replace").splitlines()
