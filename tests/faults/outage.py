"""A SeaweedFS of a test's own that can be stopped and started again on the same ports and
data, so a job sees its S3 store go away mid-run and come back as it was."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s3servers import (
    _SEAWEED_ACCESS_KEY,
    _SEAWEED_SECRET_KEY,
    S3Server,
    _stop_process_group,
    _wait_for_s3,
    _weed_binary,
    seaweed_command,
)


class RestartableSeaweed:
    """``weed mini`` under ``root``; ``stop()`` ends every process of it, ``start()`` runs
    the very same command line again (same ports, same data folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.command, port = seaweed_command(_weed_binary(), root)
        self.server = S3Server(f"http://127.0.0.1:{port}", _SEAWEED_ACCESS_KEY, _SEAWEED_SECRET_KEY)
        self.log = root / "weed.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
        _wait_for_s3(self.server, self.process, self.log)

    def stop(self) -> None:
        if self.process is not None:
            _stop_process_group(self.process)
            self.process = None


@contextmanager
def restartable_seaweed(root: Path) -> Iterator[RestartableSeaweed]:
    """A started RestartableSeaweed, stopped at the end whatever state the test left it in."""
    seaweed = RestartableSeaweed(root)
    seaweed.start()
    try:
        yield seaweed
    finally:
        seaweed.stop()
