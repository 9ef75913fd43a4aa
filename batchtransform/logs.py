"""Job logs as files, laid out like SageMaker's CloudWatch streams, and read back as events.

Each instance writes two streams under ``<job folder>/logs/``: ``<stream>.log`` with the
model's own output (stdout and stderr) and ``<stream>.data-log`` with the platform's
data-plane lines, ``<ISO time>:[sagemaker logs]: <message>`` as the service writes them.
``<stream>`` is ``instance-<n>-<epoch seconds>``, so a replaced instance gets a new stream.
In CloudWatch terms (group ``/aws/sagemaker/TransformJobs``) they are the streams
``<job>/instance-<n>-<epoch>`` and ``<job>/instance-<n>-<epoch>/data-log``.

Every event needs a time in milliseconds. A data-log line carries its own. The model log
is raw output, written by the model's native code as much as by Python, so nothing sees
its lines as they are written; instead a thread of the instance notes, five times a
second, how far the log has grown and when it was last written (``<stream>.times``: lines
of ``<size> <mtime ms>``). A line's time is that of the first note covering its end, so
it is at most a fifth of a second late and the log itself stays exactly what the model
wrote. Lines past the last note (an instance that died, or has just written) take the
log's modification time once it has been quiet for a second, or when the job has ended.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from batchtransform import config

__all__ = [
    "DATA_LOG_SUFFIX",
    "MODEL_LOG_SUFFIX",
    "TIMES_SUFFIX",
    "DataLog",
    "LogEvent",
    "StreamFile",
    "data_log_line",
    "job_streams",
    "logs_dir",
    "read_events",
    "redirect_output",
    "stream_name",
]

DATA_LOG_SUFFIX = ".data-log"
MODEL_LOG_SUFFIX = ".log"
TIMES_SUFFIX = ".times"
DATA_LOG_STREAM = "data-log"
SAMPLE_SECONDS = 0.2
QUIET_MS = 1000  # a log unchanged this long past its last note has no writer noting it
_DATA_LOG_TIME = "%Y-%m-%dT%H:%M:%S.%f"
_READ_CACHE_SIZE = 256
# A stream file's events, with the file's state they were read from; shared by callers,
# who do not change them.
_READ: dict[Path, tuple[tuple[int | bool, ...], list[LogEvent]]] = {}


def logs_dir(job_name: str, create: bool = True) -> Path:
    path = config.job_dir(job_name, create) / "logs"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def stream_name(index: int) -> str:
    return f"instance-{index}-{int(time.time())}"


def data_log_line(message: str) -> str:
    """One data-log line: ``2024-01-01T00:00:00.000Z:[sagemaker logs]: message``."""
    now = dt.datetime.now(dt.timezone.utc).strftime(_DATA_LOG_TIME)[:-3] + "Z"
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
    """Send this process's stdout and stderr (fd 1 and 2, so native code too) to ``path``,
    and note its growth in the ``.times`` file beside it until the process exits."""
    sys.stdout.flush()
    sys.stderr.flush()
    stream = path.open("a", encoding="utf-8", buffering=1)
    os.dup2(stream.fileno(), 1)
    os.dup2(stream.fileno(), 2)
    clock = _LogClock(stream.fileno(), _times_path(path))
    clock.start()
    atexit.register(clock.note)  # instances leave through the exit handlers
    return stream


class _LogClock:
    """Notes ``<size> <mtime ms>`` whenever the log has grown since the last note."""

    def __init__(self, log_fd: int, times_path: Path) -> None:
        self._log_fd = os.dup(log_fd)  # its own, however long the caller keeps the stream
        self._times_fd = os.open(times_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._noted = -1
        self._lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._run, name="batchtransform-log-clock", daemon=True).start()

    def note(self) -> None:
        with self._lock:
            stat = os.fstat(self._log_fd)
            if stat.st_size > self._noted:
                line = f"{stat.st_size} {stat.st_mtime_ns // 1_000_000}\n"
                os.write(self._times_fd, line.encode())
                self._noted = stat.st_size

    def _run(self) -> None:
        while True:
            time.sleep(SAMPLE_SECONDS)
            try:
                self.note()
            except OSError:  # the log was closed: the process is leaving
                return


# Reading


@dataclass(frozen=True)
class LogEvent:
    """One line of a stream: its time in epoch milliseconds and its text."""

    timestamp: int
    message: str


@dataclass(frozen=True)
class StreamFile:
    """One stream of a job: its CloudWatch name (``<job>/instance-1-1700000000[/data-log]``),
    its file, and when its instance started (epoch milliseconds)."""

    name: str
    path: Path
    creation_time: int


def job_streams(job_name: str) -> list[StreamFile]:
    """The job's streams, both kinds, by name; none if the job has no log folder."""
    folder = logs_dir(job_name, create=False)
    if not folder.is_dir():
        return []
    found = (_stream_file(job_name, path) for path in folder.iterdir() if path.is_file())
    return sorted((s for s in found if s is not None), key=lambda s: s.name)


def _stream_file(job_name: str, path: Path) -> StreamFile | None:
    if path.name.endswith(DATA_LOG_SUFFIX):
        base, suffix = path.name[: -len(DATA_LOG_SUFFIX)], f"/{DATA_LOG_STREAM}"
    elif path.name.endswith(MODEL_LOG_SUFFIX):
        base, suffix = path.name[: -len(MODEL_LOG_SUFFIX)], ""
    else:
        return None  # a .times file
    started = base.rsplit("-", 1)[-1]
    created = int(started) * 1000 if started.isdigit() else int(path.stat().st_mtime * 1000)
    return StreamFile(f"{job_name}/{base}{suffix}", path, created)


def read_events(path: Path, final: bool) -> list[LogEvent]:
    """Every complete line of a stream file as an event, in order.

    ``final`` says no one writes the stream any more (its job has ended): the lines past
    the last note of the model log then take its modification time at once, and a last
    line without its newline counts too.
    """
    stat = path.stat()  # before reading: bytes written after it are not covered by its time
    quiet = time.time() * 1000 - stat.st_mtime_ns // 1_000_000 > QUIET_MS
    key = (stat.st_size, stat.st_mtime_ns, _size(_times_path(path)), final, quiet)
    cached = _READ.get(path)
    if cached is not None and cached[0] == key:  # followers read the same files every second
        return cached[1]
    if path.name.endswith(DATA_LOG_SUFFIX):
        events = _data_log_events(path, stat)
    else:
        events = _model_log_events(path, stat, final or quiet, final)
    if len(_READ) >= _READ_CACHE_SIZE:
        _READ.clear()
    _READ[path] = (key, events)
    return events


def _data_log_events(path: Path, stat: os.stat_result) -> list[LogEvent]:
    data = path.read_bytes()
    fallback = stat.st_mtime_ns // 1_000_000
    events: list[LogEvent] = []
    for line in _complete_lines(data):
        text = _text(line)
        timestamp = _data_log_time(text)
        if timestamp is None:
            timestamp = events[-1].timestamp if events else fallback
        events.append(LogEvent(timestamp, text))
    return events


def _data_log_time(text: str) -> int | None:
    """The time at the head of ``2024-01-01T00:00:00.000Z:[sagemaker logs]: ...``."""
    try:
        moment = dt.datetime.strptime(text[:23], _DATA_LOG_TIME)
    except ValueError:
        return None
    return int(moment.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


def _model_log_events(
    path: Path, stat: os.stat_result, settled: bool, final: bool
) -> list[LogEvent]:
    """``settled``: the lines past the last note may take the mtime of ``stat``."""
    data = path.read_bytes()
    notes = _notes(_times_path(path))
    modified = stat.st_mtime_ns // 1_000_000
    events: list[LogEvent] = []
    end, latest, index = 0, 0, 0
    for line in _complete_lines(data, keep_partial=final):
        end += len(line)
        while index < len(notes) and notes[index][0] < end:
            index += 1
        if index < len(notes):
            timestamp = notes[index][1]
        elif settled and end <= stat.st_size:
            timestamp = modified
        else:
            break  # not yet noted: it shows once the clock notes it
        latest = max(latest, timestamp)
        events.append(LogEvent(latest, _text(line)))
    return events


def _notes(path: Path) -> list[tuple[int, int]]:
    """The ``(size, mtime ms)`` notes of a model log; none for logs written before them."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    notes = []
    for line in _complete_lines(data):
        size, _, millis = line.decode("ascii", "replace").partition(" ")
        if size.isdigit() and millis.strip().isdigit():
            notes.append((int(size), int(millis)))
    return notes


def _complete_lines(data: bytes, keep_partial: bool = False) -> Iterator[bytes]:
    """The lines of ``data`` with their ``\\n`` (only ``\\n`` ends a line: a progress bar's
    ``\\r`` does not); a last line without one only if asked."""
    start = 0
    while (end := data.find(b"\n", start)) != -1:
        yield data[start : end + 1]
        start = end + 1
    if keep_partial and start < len(data):
        yield data[start:]


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r\n")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _times_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name.removesuffix(MODEL_LOG_SUFFIX) + TIMES_SUFFIX)
