"""The output folder on a small filesystem that fills up mid-job: the file that does not fit
fails as a storage error naming its output, leaves no temporary file, and the others stay
whole and counted."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from documents import job_request
from faultkit import assert_no_process_left
from lifecycle import wait_for_end
from models import ECHO_HANDLER, echoed
from test_end_to_end import make_model, outputs, write_inputs

from batchtransform import Session

FILESYSTEM_SIZE = "1m"
# Each output is about 300 KB (ECHO_HANDLER adds "out:" to each 11-byte line): three fit in
# the 1 MiB filesystem, the fourth does not.
LINES_PER_FILE = 20_000


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for this test (root only), unmounted afterwards."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root, and this test runs as a user")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FILESYSTEM_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_output_disk_is_a_storage_error_naming_the_output(
    session: Session, small_filesystem: Path, tmp_path: Path, batchtransform_home: Path
) -> None:
    files = {
        f"{name}.csv": "".join(f"{n:010}\n" for n in range(LINES_PER_FILE))
        for name in ("a", "b", "c", "d")
    }
    write_inputs(tmp_path / "in", dict(files))
    make_model(session, tmp_path, ECHO_HANDLER)
    out = small_filesystem / "out"
    session.create_transform_job(
        **job_request(input_uri=str(tmp_path / "in") + "/", output_path=str(out))
    )
    description = wait_for_end(session, "job-1")

    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert reason.startswith("ClientError: 1 of 4 input objects failed") and "\n" not in reason
    assert f"cannot write {out}/d.csv.out" in reason
    assert "No space left on device" in reason
    assert outputs(out) == {f"{k}.out": echoed(v) for k, v in files.items() if k != "d.csv"}
    progress = description["Progress"]
    assert (progress["ObjectsCompleted"], progress["ObjectsFailed"]) == (3, 1)
    assert_no_process_left(batchtransform_home)
