"""Objects split into byte ranges, through real jobs: the same bytes as one range, whatever
the number of instances and ranges; a failure, a stop and a killed instance leave nothing
of an unfinished object behind."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from documents import job_request
from framings import RECORDIO_MAGIC, recordio_frame, tfrecord_frame
from models import ECHO_HANDLER, POISON_HANDLER, SLOW_HANDLER, echoed
from test_end_to_end import (
    instance_pids,
    make_model,
    outputs,
    records_done,
    wait_for,
    wait_until,
    write_inputs,
)

from batchtransform import Session, config

RANGE = "0.0005"  # MB: ranges of 524 bytes, so a few-KB file has several
LINE_INPUTS = {
    "crlf.csv": "".join(f"{n},{n * n}\r\n" + ("\r\n" if n % 9 == 0 else "") for n in range(150)),
    "no-newline.csv": "\n".join(f"row {n}" + " pad" * (n % 13) for n in range(200)),
    "small.csv": "1,2\n",
    "sub/blank-start.csv": "\n\n" + "".join(f"x{n}\n" for n in range(200)),
}

IDENTITY_HANDLER = """
def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    return body.encode() if isinstance(body, str) else body
"""

# One JSON object per record, no final newline: only per-record splitting keeps it exact.
LENGTHS_HANDLER = """
import json

def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    text = body.decode() if isinstance(body, bytes) else body
    rows = [json.loads(line) for line in text.split("\\n") if line]
    return "\\n".join(json.dumps({"n": len(row)}) for row in rows), accept
"""


@pytest.fixture
def session() -> Session:
    return Session()


def run(
    session: Session, tmp_path: Path, name: str, range_mb: str, instances: int, **overrides: Any
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Run job ``name`` over ``tmp_path/in`` into ``tmp_path/<name>``; its description and
    the files its output folder holds (hidden ones included)."""
    request = job_request(
        name=name,
        input_uri=str(tmp_path / "in") + "/",
        output_path=str(tmp_path / name),
        Environment={"BATCHTRANSFORM_RANGE_SIZE_MB": range_mb},
        TransformResources={"InstanceCount": instances},
        **overrides,
    )
    session.create_transform_job(**request)
    description = wait_for(session, name)
    folder = tmp_path / name
    return description, outputs(folder) if folder.exists() else {}


def _assembled(name: str) -> int:
    """How many objects the job's controller put together from ranges."""
    log = config.job_dir(name) / "controller.log"
    return log.read_text().count(" ranges\n") if log.exists() else 0


def completed(description: dict[str, Any]) -> None:
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")


@pytest.mark.parametrize(
    ("instances", "strategy", "assemble"),
    [(1, "MultiRecord", "None"), (2, "SingleRecord", "Line"), (4, "MultiRecord", "Line")],
)
def test_line_ranges_give_the_bytes_of_one_range(
    session: Session, tmp_path: Path, instances: int, strategy: str, assemble: str
) -> None:
    write_inputs(tmp_path / "in", dict(LINE_INPUTS))
    make_model(session, tmp_path, ECHO_HANDLER)
    settings: dict[str, Any] = {
        "BatchStrategy": strategy,
        "MaxPayloadInMB": 1,
        "MaxConcurrentTransforms": 2,
        "TransformOutput": {"AssembleWith": assemble},
    }
    description, ranged = run(session, tmp_path, "ranged", RANGE, instances, **settings)
    completed(description)
    assert _assembled("ranged") == 3  # the files over 524 bytes ran as ranges
    expected = {f"{k}.out": echoed(v) for k, v in LINE_INPUTS.items()}
    assert ranged == expected  # and no part or temporary file is left beside them
    progress = description["Progress"]
    assert progress["ObjectsTotal"] == progress["ObjectsCompleted"] == len(LINE_INPUTS)
    assert progress["RecordsProcessed"] == sum(len(v.splitlines()) for v in expected.values())
    if instances == 1:  # the one-range run writes the same bytes
        whole, one_range = run(session, tmp_path, "whole", "0", 1, **settings)
        completed(whole)
        assert one_range == ranged


def _recordio_file() -> bytes:
    frames = []
    for n in range(60):
        data = f"record {n} ".encode() * (n % 5)
        if n % 8 == 5:  # split by its writer where the magic number fell
            frames += [recordio_frame(data, 1), recordio_frame(b"", 2), recordio_frame(data, 3)]
        else:
            frames.append(recordio_frame(data + RECORDIO_MAGIC[:2]))
    return b"".join(frames)


FRAMED = {
    "RecordIO": _recordio_file(),
    "TFRecord": b"".join(tfrecord_frame(f"example {n} ".encode() * (n % 7)) for n in range(80)),
}


@pytest.mark.parametrize("split_type", sorted(FRAMED))
def test_framed_ranges_give_the_bytes_of_one_range(
    session: Session, tmp_path: Path, split_type: str
) -> None:
    write_inputs(tmp_path / "in", {"data.bin": FRAMED[split_type]})
    make_model(session, tmp_path, IDENTITY_HANDLER)
    base: dict[str, Any] = {
        "TransformInput": {"ContentType": "application/octet-stream", "SplitType": split_type}
    }
    single = {**base, "BatchStrategy": "SingleRecord", "TransformOutput": {"AssembleWith": "Line"}}
    whole, one_range = run(session, tmp_path, "whole", "0", 1, **single)
    completed(whole)
    description, ranged = run(session, tmp_path, "ranged", RANGE, 3, **single)
    completed(description)
    assert _assembled("ranged") == 1
    assert ranged == one_range
    assert description["Progress"]["RecordsProcessed"] == whole["Progress"]["RecordsProcessed"]

    multi = {**base, "BatchStrategy": "MultiRecord", "TransformOutput": {"AssembleWith": "None"}}
    description, framed = run(session, tmp_path, "multi", RANGE, 2, **multi)
    completed(description)
    assert framed == {"data.bin.out": FRAMED[split_type]}


def test_ranges_with_filters_and_join(session: Session, tmp_path: Path) -> None:
    rows = "".join(
        f'{{"id": {n}, "features": [{", ".join(["1"] * (n % 6))}]}}\n' for n in range(90)
    )
    write_inputs(tmp_path / "in", {"rows.jsonl": rows + '{"id": "last", "features": []}'})
    make_model(session, tmp_path, LENGTHS_HANDLER)
    settings: dict[str, Any] = {
        "TransformInput": {"ContentType": "application/jsonlines", "SplitType": "Line"},
        "TransformOutput": {"Accept": "application/jsonlines", "AssembleWith": "Line"},
        "BatchStrategy": "MultiRecord",
        "DataProcessing": {
            "InputFilter": "$.features",
            "JoinSource": "Input",
            "OutputFilter": "$['id','SageMakerOutput']",
        },
    }
    whole, one_range = run(session, tmp_path, "whole", "0", 1, **settings)
    completed(whole)
    description, ranged = run(session, tmp_path, "ranged", RANGE, 3, **settings)
    completed(description)
    assert _assembled("ranged") == 1
    assert ranged == one_range
    assert one_range["rows.jsonl.out"].count(b"\n") == 91


def test_a_failed_range_fails_its_object_naming_the_record_in_the_object(
    session: Session, tmp_path: Path
) -> None:
    bad = "".join(f"line {n}\n" for n in range(300)).replace("line 250\n", "poison\n")
    write_inputs(
        tmp_path / "in", {"bad.csv": bad, "good.csv": "".join(f"{n}\n" for n in range(300))}
    )
    make_model(session, tmp_path, POISON_HANDLER)
    description, written = run(session, tmp_path, "ranged", RANGE, 2, BatchStrategy="SingleRecord")
    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert "1 of 2 input objects failed" in reason
    assert "record 251" in reason and "bad.csv (bytes " in reason
    # the good object is whole; of the bad one only the parts of its other ranges are
    # left, for a resume: no output, no part of the failed range, no temporary file
    assert written.pop("good.csv.out") == "".join(f"out:{n}\n" for n in range(300)).encode()
    failed, parts = map(int, re.findall(r"part (\d+) of (\d+)", reason)[0])
    assert sorted(written) == [
        f".bad.csv.out.part-{n:05d}-of-{parts:05d}" for n in range(1, parts + 1) if n != failed
    ]


def test_a_stopped_ranged_job_keeps_no_part_when_told_not_to(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_KEEP_PARTS_SECONDS", "0")  # no resume wanted
    write_inputs(tmp_path / "in", {"big.csv": "".join(f"{n:04d}\n" for n in range(400))})
    make_model(session, tmp_path, SLOW_HANDLER)
    request = job_request(
        input_uri=str(tmp_path / "in") + "/",
        output_path=str(tmp_path / "out"),
        BatchStrategy="SingleRecord",
        Environment={"BATCHTRANSFORM_RANGE_SIZE_MB": "0.0002"},  # 10 records a range
        TransformResources={"InstanceCount": 2},
    )
    session.create_transform_job(**request)
    wait_until(lambda: records_done(session) > 25)  # some parts written, others under way
    session.stop_transform_job(TransformJobName="job-1")
    description = wait_for(session, "job-1", timeout=30)
    assert description["TransformJobStatus"] == "Stopped"
    assert description["Progress"]["ObjectsCompleted"] == 0
    left = list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else []
    assert not left, "a stopped object leaves no output, no part, no temporary file"


def test_a_killed_instance_during_a_ranged_job(session: Session, tmp_path: Path) -> None:
    content = "".join(f"{n:04d}\n" for n in range(60))
    write_inputs(tmp_path / "in", {"big.csv": content})
    make_model(session, tmp_path, SLOW_HANDLER)
    request = job_request(
        input_uri=str(tmp_path / "in") + "/",
        output_path=str(tmp_path / "out"),
        BatchStrategy="SingleRecord",
        Environment={"BATCHTRANSFORM_RANGE_SIZE_MB": "0.0001"},  # 4 or 5 records a range
        TransformResources={"InstanceCount": 2},
    )
    session.create_transform_job(**request)
    wait_until(lambda: records_done(session) > 0)
    pid = session.service.store.get_job("job-1").controller_pid  # type: ignore[union-attr]
    os.kill(instance_pids(pid)[0], signal.SIGKILL)

    description = wait_for(session, "job-1")
    completed(description)  # its range ran again elsewhere
    assert outputs(tmp_path / "out") == {"big.csv.out": echoed(content)}
