"""Log streams as files and as events: the model log's timestamp notes, data-log times,
which lines count as events, and the CloudWatch stream names."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from batchtransform import logs
from batchtransform.logs import LogEvent

LONG_AGO_NS = (time.time() - 3600) * 1e9
JUST_NOW_NS = (time.time() + 3600) * 1e9  # written "now" however slowly the test runs


def write_stream(folder: Path, text: bytes, notes: str | None, mtime_ns: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "instance-1-1700000000.log"
    path.write_bytes(text)
    if notes is not None:
        (folder / "instance-1-1700000000.times").write_text(notes)
    os.utime(path, ns=(int(mtime_ns), int(mtime_ns)))
    return path


MTIME_MS = int(LONG_AGO_NS // 1_000_000)

# (case, log bytes, notes, settled by age, final, expected (timestamp, message) events)
MODEL_LOG_CASES = [
    ("each line takes the first note covering its end", b"a\nbb\nccc\n", "2 100\n9 300\n", True, False, [(100, "a"), (300, "bb"), (300, "ccc")]),
    ("a note past a line's end covers it, one mid-line does not", b"a\nbb\n", "3 100\n5 200\n", True, False, [(100, "a"), (200, "bb")]),
    ("lines past the last note take the mtime once quiet", b"a\nbb\n", "2 100\n", True, False, [(100, "a"), (MTIME_MS, "bb")]),
    ("lines past the last note wait while the log is busy", b"a\nbb\n", "2 100\n", False, False, [(100, "a")]),
    ("a job's end makes them final", b"a\nbb\n", "2 100\n", False, True, [(100, "a"), ("mtime", "bb")]),
    ("no notes at all (older logs): the mtime", b"x\ny\n", None, True, False, [(MTIME_MS, "x"), (MTIME_MS, "y")]),
    ("a partial last line waits for its newline", b"a\npart", "6 100\n", True, False, [(100, "a")]),
    ("a partial last line counts when final", b"a\npart", "6 100\n", True, True, [(100, "a"), (100, "part")]),
    ("CRLF and a progress bar's CR", b"50%\r100%\r\n\nend\n", "16 100\n", True, False, [(100, "50%\r100%"), (100, ""), (100, "end")]),
    ("a torn note line is ignored", b"a\n", "2 100\n9 3", True, False, [(100, "a")]),
    ("times never go backwards", b"a\nb\n", "2 500\n4 400\n", True, False, [(500, "a"), (500, "b")]),
    ("bytes that are not UTF-8 are replaced", b"caf\xe9\n", "5 100\n", True, False, [(100, "caf\ufffd")]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("log", "notes", "quiet", "final", "expected"),
    [case[1:] for case in MODEL_LOG_CASES],
    ids=[case[0] for case in MODEL_LOG_CASES],
)
def test_model_log_events(
    tmp_path: Path,
    log: bytes,
    notes: str | None,
    quiet: bool,
    final: bool,
    expected: list[tuple[int | str, str]],
) -> None:
    path = write_stream(tmp_path, log, notes, LONG_AGO_NS if quiet else JUST_NOW_NS)
    modified = path.stat().st_mtime_ns // 1_000_000
    wanted = [LogEvent(modified if ts == "mtime" else int(ts), text) for ts, text in expected]
    assert logs.read_events(path, final=final) == wanted


def test_data_log_events_carry_their_own_times(tmp_path: Path) -> None:
    path = tmp_path / "instance-2-1700000000.data-log"
    path.write_text(
        "2024-01-02T03:04:05.678Z:[sagemaker logs]: MaxConcurrentTransforms=1\n"
        "not a timed line\n"
        "2024-01-02T03:04:06.000Z:[sagemaker logs]: half"
    )
    assert logs.read_events(path, final=False) == [
        LogEvent(
            1704164645678, "2024-01-02T03:04:05.678Z:[sagemaker logs]: MaxConcurrentTransforms=1"
        ),
        LogEvent(1704164645678, "not a timed line"),
    ]


def test_data_log_lines_parse_back_to_the_time_they_were_written(tmp_path: Path) -> None:
    before = int(time.time() * 1000)
    log = logs.DataLog(tmp_path / "instance-1-1.data-log")
    log.write("hello")
    log.close()
    [event] = logs.read_events(tmp_path / "instance-1-1.data-log", final=False)
    assert before - 1 <= event.timestamp <= int(time.time() * 1000)
    assert event.message.endswith(":[sagemaker logs]: hello")


def test_job_streams_are_named_as_cloudwatch_names_them(batchtransform_home: Path) -> None:
    folder = logs.logs_dir("job-7")
    for name in (
        "instance-1-1700000000.log",
        "instance-1-1700000000.times",
        "instance-1-1700000000.data-log",
        "instance-2-1700000005.log",
    ):
        (folder / name).write_text("")
    streams = logs.job_streams("job-7")
    assert [(s.name, s.path.name, s.creation_time) for s in streams] == [
        ("job-7/instance-1-1700000000", "instance-1-1700000000.log", 1700000000000),
        ("job-7/instance-1-1700000000/data-log", "instance-1-1700000000.data-log", 1700000000000),
        ("job-7/instance-2-1700000005", "instance-2-1700000005.log", 1700000005000),
    ]
    assert logs.job_streams("no-such-job") == []
    assert not logs.logs_dir("no-such-job", create=False).exists(), "reading creates nothing"


# An instance's output, Python's and native (os.write on fd 1 and 2), with the time each
# line is written just before it; it leaves through the exit handlers, as instances do.
_WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from batchtransform import logs

    folder = Path(sys.argv[1])
    logs.redirect_output(folder / "instance-1-1700000000.log")
    written = []
    for n in range(6):
        written.append(int(time.time() * 1000))
        if n % 3 == 0:
            print(f"python line {n}", flush=True)
        elif n % 3 == 1:
            os.write(1, f"native stdout line {n}\\n".encode())
        else:
            os.write(2, f"native stderr line {n}\\n".encode())
        time.sleep(0.3)
    (folder / "written.json").write_text(json.dumps(written))
    """
)


def test_an_instances_output_gets_times_from_its_clock(tmp_path: Path) -> None:
    started = int(time.time() * 1000)
    subprocess.run([sys.executable, "-c", _WRITER, str(tmp_path)], check=True, timeout=60)
    ended = int(time.time() * 1000)

    log = tmp_path / "instance-1-1700000000.log"
    assert log.read_text().splitlines()[0] == "python line 0", "the log is the raw output"
    assert (tmp_path / "instance-1-1700000000.times").read_text(), "the clock took notes"
    events = logs.read_events(log, final=False)
    written = json.loads((tmp_path / "written.json").read_text())
    assert [e.message.split(" line ")[1] for e in events] == [str(n) for n in range(6)]
    coarse_clock_ms = 50  # file times come from the kernel's coarse clock
    for event, at in zip(events, written, strict=True):
        assert at - coarse_clock_ms <= event.timestamp <= ended, event
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(events))
    assert started - coarse_clock_ms <= events[0].timestamp
