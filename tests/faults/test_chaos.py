"""Chaos: a two-instance job over S3 while an instance is SIGKILLed every ~2 s.

Twenty input objects on SeaweedFS (two of them big enough for multipart outputs), a handler
that takes its time, and a bounded number of kills of whichever instance the dice pick,
busy or starting. The job must end Completed with every output exact, each object written
once under its own key and nothing else there, the counts exact, no multipart upload left
open and no process of the job left.

A file is tried on up to three instances; kills every 2 s of files that take up to 3 s
would, by chance, hit one file three times and rightly fail it. So the handler logs which
file it serves, and the dice only pick among instances whose file was not hit before.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultkit import assert_no_process_left, open_uploads
from lifecycle import JOB_TIMEOUT
from models import echoed
from s3servers import S3Server
from test_end_to_end import instance_pids, make_model
from test_instance_death import controller_log, controller_pid, data_logs

from batchtransform import Session
from batchtransform.logs import logs_dir

KILLS = 4
KILL_EVERY_SECONDS = 2.0
SMALL_FILES = 18
BIG_LINES = 90_000  # about 9.5 MiB of output: more than one 8 MiB part

# Echoes, taking 0.3 s for each mini-batch, so that the kills land mid-file; logs which
# file (the first field of its records) its process serves.
PATIENT_HANDLER = """
import os
import time

def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    print("serving", body.split(",", 1)[0], os.getpid(), flush=True)
    time.sleep(0.3)
    return "".join(f"out:{line}\\n" for line in body.split("\\n"))
"""


def inputs() -> dict[str, str]:
    """Small files of three 1 MiB mini-batches, and two big ones."""
    row = "x" * 90
    files = {
        f"small/{i:02d}.csv": "".join(f"{i},{n},{row}\n" for n in range(25_000))
        for i in range(SMALL_FILES)
    }
    for name in ("big-a.csv", "big-b.csv"):
        files[name] = "".join(f"{name},{n},{row}\n" for n in range(BIG_LINES))
    return files


def last_instance() -> int:
    """The highest instance number that wrote a data-log (one killed while starting may
    not have; the last replacement always does)."""
    return max(int(path.name.split("-")[1]) for path in data_logs())


def serving() -> dict[int, str]:
    """Each instance process's file, as its handler last logged it."""
    found = {}
    for path in logs_dir("job-1").glob("*[0-9].log"):
        for line in path.read_text().splitlines():
            if line.startswith("serving "):
                _, file, pid = line.split()
                found[int(pid)] = file
    return found


def victim(session: Session, dice: random.Random, hit: set[str]) -> int | None:
    """A random instance, busy on a file not hit before, or still starting."""
    files = serving()
    pids = [pid for pid in instance_pids(controller_pid(session)) if files.get(pid) not in hit]
    if not pids:
        return None
    pid = dice.choice(pids)
    if pid in files:
        hit.add(files[pid])
    return pid


def kill_until_done(session: Session, seed: int) -> int:
    """SIGKILL an instance every ~2 s until KILLS kills or the job's end; how many."""
    dice = random.Random(seed)
    kills = 0
    hit: set[str] = set()
    deadline = time.monotonic() + JOB_TIMEOUT
    next_kill = time.monotonic() + KILL_EVERY_SECONDS
    while time.monotonic() < deadline:
        status = session.describe_transform_job(TransformJobName="job-1")["TransformJobStatus"]
        if status != "InProgress":
            return kills
        if kills < KILLS and time.monotonic() >= next_kill:
            pid = victim(session, dice, hit)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                kills += 1
                next_kill = time.monotonic() + KILL_EVERY_SECONDS
        time.sleep(0.1)
    raise AssertionError(f"the job did not end within {JOB_TIMEOUT} s")


@pytest.mark.slow  # about 30 s
def test_a_job_survives_an_instance_killed_every_two_seconds(
    seaweed_s3: S3Server,
    s3_env: Callable[[S3Server], S3Server],
    new_bucket: Callable[[S3Server], str],
    tmp_path: Path,
    batchtransform_home: Path,
) -> None:
    server = s3_env(seaweed_s3)
    bucket = new_bucket(server)
    client = server.client()
    files = inputs()
    for key, text in files.items():
        client.put_object(Bucket=bucket, Key=f"in/{key}", Body=text.encode())
    session = Session()
    make_model(session, tmp_path, PATIENT_HANDLER)
    session.create_transform_job(
        TransformJobName="job-1",
        ModelName="m1",
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/in/"}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"s3://{bucket}/out/", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 2},
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=1,
    )

    kills = kill_until_done(session, seed=int.from_bytes(os.urandom(4), "big"))

    description = session.describe_transform_job(TransformJobName="job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert kills >= 3, f"the job ended before the kills landed ({kills})"
    progress = description["Progress"]
    total = SMALL_FILES + 2
    assert (progress["ObjectsTotal"], progress["ObjectsCompleted"]) == (total, total)
    assert progress["ObjectsFailed"] == 0
    listed = client.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents", [])
    assert sorted(o["Key"] for o in listed) == sorted(f"out/{k}.out" for k in files)
    for key, text in files.items():
        body = client.get_object(Bucket=bucket, Key=f"out/{key}.out")["Body"].read()
        assert body == echoed(text), f"out/{key}.out is not exact"
    assert open_uploads(server, bucket) == []
    deaths = controller_log().count("killed by SIGKILL")
    assert deaths <= kills and last_instance() == 2 + deaths, "each death, one replacement"
    assert_no_process_left(batchtransform_home)
