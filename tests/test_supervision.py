"""The instance's supervision of its model: a dead model server restarted from the same
folder, one that cannot restart given up on, and the watchdog over in-process calls."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from runtimes.model_server import write_launcher

from batchtransform.errors import InstanceLostError, ModelError
from batchtransform.runtimes import create_runtime
from batchtransform.runtimes.base import RuntimeContext
from batchtransform.supervision import RESTART_ATTEMPTS, SupervisedRuntime, Watchdog


def supervised(tmp_path: Path, environment: dict[str, str], log: io.StringIO) -> SupervisedRuntime:
    (tmp_path / "model").mkdir(exist_ok=True)
    context = RuntimeContext(
        f"process://{write_launcher(tmp_path)}", tmp_path / "model", environment, log, 30.0, 30.0
    )
    notices: list[str] = []
    runtime = SupervisedRuntime(lambda: create_runtime(context), notices.append, log, 30.0)
    runtime.notices = notices  # type: ignore[attr-defined]
    return runtime


def test_a_server_that_exits_is_restarted_and_the_next_call_reaches_the_new_one(
    tmp_path: Path,
) -> None:
    log = io.StringIO()
    runtime = supervised(tmp_path, {"MODEL_SERVER_MODE": "crash-at"}, log)
    runtime.start()
    try:
        assert runtime.invoke(b"1", None, None) == b"out:1\n"
        assert runtime.invoke(b"2", None, None) == b"out:2\n"
        first = runtime.inner
        with pytest.raises(ModelError, match="exited with code 1"):
            runtime.invoke(b"3", None, None)  # the 3rd request: the server exits
        assert runtime.inner is not first and runtime.alive()
        assert runtime.invoke(b"3", None, None) == b"out:3\n"
        notices = runtime.notices  # type: ignore[attr-defined]
        assert notices[0].startswith("The model died (") and "attempt 1 of 3" in notices[0]
        assert notices[-1] == "The model was restarted"
        assert "The model was restarted" in log.getvalue()
    finally:
        runtime.stop()


def test_a_server_that_cannot_restart_gives_the_instance_up(tmp_path: Path) -> None:
    death = tmp_path / "died"
    environment = {
        "MODEL_SERVER_MODE": "die-for-good",
        "MODEL_SERVER_CRASH_AT": "1",
        "MODEL_SERVER_DEATH_FILE": str(death),
    }
    runtime = supervised(tmp_path, environment, io.StringIO())
    runtime.start()
    try:
        with pytest.raises(InstanceLostError, match="could not be restarted") as raised:
            runtime.invoke(b"1", None, None)
        assert f"{RESTART_ATTEMPTS} attempts" in raised.value.message
        assert "exited with code 3" in raised.value.message, "the last start's failure"
    finally:
        runtime.stop()


class _Abandoned:
    """A report whose ``abandon`` records what it was told and returns, where the
    executor's ends the process."""

    def __init__(self) -> None:
        self.told: list[tuple[str, int | None]] = []
        self.done = threading.Event()

    def __call__(self, detail: dict[str, Any]) -> None:
        pass

    def abandon(self, reason: str, attempts: int | None = None) -> None:
        self.told.append((reason, attempts))
        self.done.set()


def test_the_watchdog_ends_the_instance_on_a_call_past_its_timeout() -> None:
    log, notices, report = io.StringIO(), [], _Abandoned()
    watchdog = Watchdog(0.3, notices.append, log)
    watchdog.arm("s3://bucket/in/a.csv", report, 4)
    quick = watchdog.enter()
    watchdog.leave(quick)
    stuck = watchdog.enter()
    try:
        assert report.done.wait(10), "the watchdog did not fire"
    finally:
        watchdog.leave(stuck)
        watchdog.close()
    reason, attempts = report.told[0]
    assert attempts == 4
    assert "no response from the model within 0.3 s" in reason
    assert notices[0] == f"s3://bucket/in/a.csv: {reason}"
    assert "The call was stuck at" in log.getvalue() and "test_supervision.py" in log.getvalue()


def test_the_watchdog_leaves_calls_within_their_timeout_alone() -> None:
    report = _Abandoned()
    watchdog = Watchdog(5.0, lambda line: None, io.StringIO())
    watchdog.arm("a.csv", report, 1)
    token = watchdog.enter()
    time.sleep(0.6)  # a few of the watchdog's rounds
    watchdog.leave(token)
    watchdog.close()
    assert report.told == []
