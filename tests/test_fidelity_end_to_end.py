"""Data fidelity through real jobs: the reference's worked examples byte for byte, binary
framings, manifests and data capture.

Each handler appends every request body it receives to the file named by the job's
``RECEIVED`` environment variable (one JSON line per request), so a test can check what
the model was sent as well as what was written.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
from documents import job_request
from framings import RECORDIO_MAGIC, recordio_frame, tfrecord_frame
from test_end_to_end import make_model, outputs, wait_for, write_inputs

from batchtransform import Session, ValidationError

_RECORDING = """
import json, os

def model_fn(model_dir):
    return "ok"

def _record(body):
    data = body.encode() if isinstance(body, str) else body
    with open(os.environ["RECEIVED"], "a") as log:
        log.write(json.dumps(data.decode("latin-1")) + "\\n")
    return data
"""

# Reference §5.3: a fixed score for each (filtered) CSV row.
CSV_SCORES_HANDLER = (
    _RECORDING
    + """
SCORES = {"5.1,3.5": "0.93", "6.2,2.9": "0.12"}

def transform_fn(model, body, content_type, accept):
    text = _record(body).decode()
    return "".join(SCORES[line] + "\\n" for line in text.split("\\n") if line), accept
"""
)

# Reference §5.4: {"score": ...} per JSON Lines record, without a final newline.
JSONL_SCORES_HANDLER = (
    _RECORDING
    + """
SCORES = {(1, 2): 0.9, (3, 4): 0.1}

def transform_fn(model, body, content_type, accept):
    rows = [json.loads(line) for line in _record(body).decode().split("\\n") if line]
    return "\\n".join(json.dumps({"score": SCORES[tuple(r)]}, separators=(",", ":")) for r in rows)
"""
)

# Answers a whole batch with a single line, whatever it was sent.
ONE_LINE_HANDLER = (
    _RECORDING
    + """
def transform_fn(model, body, content_type, accept):
    _record(body)
    return "0.5\\n"
"""
)

BINARY_ECHO_HANDLER = (
    _RECORDING
    + """
def transform_fn(model, body, content_type, accept):
    return _record(body)
"""
)


@pytest.fixture
def session() -> Session:
    return Session()


def run_job(
    session: Session, tmp_path: Path, handler: str, **overrides: Any
) -> tuple[dict[str, Any], list[bytes]]:
    """Create the model and job ``job-1`` reading ``tmp_path/in``; return its description
    and the request bodies the model received, in order."""
    make_model(session, tmp_path, handler)
    received = tmp_path / "received.jsonl"
    request = job_request(
        input_uri=str(tmp_path / "in") + "/",
        output_path=str(tmp_path / "out"),
        Environment={"RECEIVED": str(received)},
        **overrides,
    )
    session.create_transform_job(**request)
    description = wait_for(session, "job-1")
    lines = received.read_text().splitlines() if received.exists() else []
    return description, [json.loads(line).encode("latin-1") for line in lines]


def completed(description: dict[str, Any]) -> None:
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")


# --- reference §5.3 and §5.4 ------------------------------------------------------------


def test_reference_csv_example(session: Session, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", {"in.csv": "id1,5.1,3.5\nid2,6.2,2.9\n"})
    description, received = run_job(
        session,
        tmp_path,
        CSV_SCORES_HANDLER,
        TransformInput={"ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"Accept": "text/csv", "AssembleWith": "Line"},
        BatchStrategy="MultiRecord",
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    )
    completed(description)
    assert received == [b"5.1,3.5\n6.2,2.9"]
    assert outputs(tmp_path / "out") == {"in.csv.out": b"id1,0.93\nid2,0.12\n"}


def test_reference_json_lines_example(session: Session, tmp_path: Path) -> None:
    write_inputs(
        tmp_path / "in",
        {"in.jsonl": '{"id":"a","features":[1,2]}\n{"id":"b","features":[3,4]}\n'},
    )
    description, received = run_job(
        session,
        tmp_path,
        JSONL_SCORES_HANDLER,
        TransformInput={"ContentType": "application/jsonlines", "SplitType": "Line"},
        TransformOutput={"Accept": "application/jsonlines", "AssembleWith": "Line"},
        BatchStrategy="MultiRecord",
        DataProcessing={
            "InputFilter": "$.features",
            "JoinSource": "Input",
            "OutputFilter": "$['id','SageMakerOutput']",
        },
    )
    completed(description)
    assert received == [b"[1,2]\n[3,4]"]
    assert outputs(tmp_path / "out") == {
        "in.jsonl.out": b'{"id":"a","SageMakerOutput":{"score":0.9}}\n'
        b'{"id":"b","SageMakerOutput":{"score":0.1}}\n'
    }


def test_a_response_count_mismatch_fails_the_file_naming_the_record(
    session: Session, tmp_path: Path
) -> None:
    write_inputs(tmp_path / "in", {"in.csv": "id1,5.1,3.5\nid2,6.2,2.9\n"})
    description, _ = run_job(
        session,
        tmp_path,
        ONE_LINE_HANDLER,
        TransformOutput={"Accept": "text/csv"},
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input"},
    )
    assert description["TransformJobStatus"] == "Failed"
    assert "in.csv: record 1:" in description["FailureReason"]
    assert "1 non-empty lines for the 2 records 1-2" in description["FailureReason"]
    assert not (tmp_path / "out").exists() or outputs(tmp_path / "out") == {}


# --- RecordIO and TFRecord --------------------------------------------------------------


RECORDIO_FILE = (
    recordio_frame(b"one")
    + recordio_frame(b"pa", 1)
    + recordio_frame(b"rts", 3)  # one record: b"pa" + magic + b"rts"
    + recordio_frame(b"four")
)
RECORDIO_PAYLOADS = [b"one", b"pa" + RECORDIO_MAGIC + b"rts", b"four"]
TFRECORD_PAYLOADS = [b"\x0a\x03abc", b"", b"x" * 300]
TFRECORD_FILE = b"".join(map(tfrecord_frame, TFRECORD_PAYLOADS))

FRAMINGS = [
    pytest.param("RecordIO", RECORDIO_FILE, RECORDIO_PAYLOADS, id="recordio"),
    pytest.param("TFRecord", TFRECORD_FILE, TFRECORD_PAYLOADS, id="tfrecord"),
]


@pytest.mark.parametrize(("split_type", "file", "payloads"), FRAMINGS)
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_framed_inputs_single_record_sends_bare_payloads(
    session: Session,
    tmp_path: Path,
    split_type: str,
    file: bytes,
    payloads: list[bytes],
    gzipped: bool,
) -> None:
    write_inputs(tmp_path / "in", {"data.bin": gzip.compress(file) if gzipped else file})
    description, received = run_job(
        session,
        tmp_path,
        BINARY_ECHO_HANDLER,
        BatchStrategy="SingleRecord",
        TransformInput={
            "ContentType": "application/octet-stream",
            "SplitType": split_type,
            "CompressionType": "Gzip" if gzipped else "None",
        },
        TransformOutput={"AssembleWith": "None"},
    )
    completed(description)
    assert received == payloads
    assert outputs(tmp_path / "out") == {"data.bin.out": b"".join(payloads)}


@pytest.mark.parametrize(("split_type", "file", "payloads"), FRAMINGS)
def test_framed_inputs_multi_record_keeps_the_framing(
    session: Session, tmp_path: Path, split_type: str, file: bytes, payloads: list[bytes]
) -> None:
    write_inputs(tmp_path / "in", {"data.bin": file})
    description, received = run_job(
        session,
        tmp_path,
        BINARY_ECHO_HANDLER,
        BatchStrategy="MultiRecord",
        TransformInput={"ContentType": "application/octet-stream", "SplitType": split_type},
        TransformOutput={"AssembleWith": "None"},
    )
    completed(description)
    assert received == [file]
    assert outputs(tmp_path / "out") == {"data.bin.out": file}
    assert description["Progress"]["RecordsProcessed"] == len(payloads)


@pytest.mark.parametrize(
    ("split_type", "file", "message"),
    [
        pytest.param("RecordIO", RECORDIO_FILE[:12] + b"\0\0\0\0" + RECORDIO_FILE[16:], "record 2, byte offset 12: invalid RecordIO: expected the RecordIO magic number", id="recordio"),
        pytest.param("TFRecord", TFRECORD_FILE[:-1] + b"\0", "record 3, byte offset 37: invalid TFRecord: the data's checksum", id="tfrecord"),
    ],
)  # fmt: skip
def test_corrupt_framing_fails_the_file_with_the_byte_offset(
    session: Session, tmp_path: Path, split_type: str, file: bytes, message: str
) -> None:
    write_inputs(tmp_path / "in", {"bad.bin": file, "good.bin": b""})
    description, _ = run_job(
        session,
        tmp_path,
        BINARY_ECHO_HANDLER,
        BatchStrategy="SingleRecord",
        TransformInput={"ContentType": "application/octet-stream", "SplitType": split_type},
        TransformOutput={"AssembleWith": "None"},
    )
    assert description["TransformJobStatus"] == "Failed"
    assert f"bad.bin: {message}" in description["FailureReason"]
    assert outputs(tmp_path / "out") == {"good.bin.out": b""}


# --- ManifestFile ------------------------------------------------------------------------


def manifest_job(tmp_path: Path, entries: list[Any]) -> dict[str, Any]:
    """Overrides for a job reading the manifest ``entries`` after a prefix of ``data/``."""
    manifest = tmp_path / "input.manifest"
    manifest.write_text(json.dumps([{"prefix": str(tmp_path / "data") + "/"}, *entries]))
    source = {"S3DataType": "ManifestFile", "S3Uri": str(manifest)}
    return {"TransformInput": {"DataSource": {"S3DataSource": source}}}


def test_manifest_file_input(session: Session, tmp_path: Path) -> None:
    write_inputs(tmp_path / "data", {"a.csv": "1\n", "sub/b.csv": "2\n3\n", "unlisted.csv": "9\n"})
    description, received = run_job(
        session,
        tmp_path,
        BINARY_ECHO_HANDLER,
        **manifest_job(tmp_path, ["sub/b.csv", "a.csv"]),
        BatchStrategy="SingleRecord",
    )
    completed(description)
    assert sorted(received) == [b"1", b"2", b"3"]
    assert outputs(tmp_path / "out") == {"a.csv.out": b"1\n", "sub/b.csv.out": b"2\n3\n"}


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        pytest.param(["a.csv", "a.csv"], "would both write", id="duplicate-output"),
        pytest.param(["a.csv", "/a.csv"], "would both write", id="same-output-after-slash"),
        pytest.param(["../a.csv"], "has a '..' segment", id="escapes-the-output"),
        pytest.param([7], "element 2 (7) is not a key suffix string", id="not-a-string"),
        pytest.param(["a.csv", "gone.csv"], "gone.csv: the input object was not found", id="missing-object"),
    ],
)  # fmt: skip
def test_bad_manifests_fail_the_job_clearly(
    session: Session, tmp_path: Path, entries: list[Any], reason: str
) -> None:
    write_inputs(tmp_path / "data", {"a.csv": "1\n"})
    description, _ = run_job(
        session, tmp_path, BINARY_ECHO_HANDLER, **manifest_job(tmp_path, entries)
    )
    assert description["TransformJobStatus"] == "Failed"
    assert reason in description["FailureReason"]


# --- data capture ------------------------------------------------------------------------

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def capture_manifests(tmp_path: Path, description: dict[str, Any]) -> tuple[Any, Any]:
    """The input and output manifests, under the hour of the job's CreationTime (UTC)."""
    hour = description["CreationTime"].strftime("%Y/%m/%d/%H")
    return tuple(  # type: ignore[return-value]
        json.loads((tmp_path / "capture" / kind / hour / "job-1.manifest").read_text())
        for kind in ("input", "output")
    )


def test_capture_with_inference_ids_csv(session: Session, tmp_path: Path) -> None:
    write_inputs(
        tmp_path / "in", {"in.csv": "id1,5.1,3.5\nid2,6.2,2.9\n", "sub/more.csv": "x,5.1,3.5\n"}
    )
    description, _ = run_job(
        session,
        tmp_path,
        CSV_SCORES_HANDLER,
        TransformOutput={"Accept": "text/csv"},
        DataProcessing={"InputFilter": "$[1:]"},
        DataCaptureConfig={
            "DestinationS3Uri": str(tmp_path / "capture"),
            "GenerateInferenceId": True,
        },
    )
    completed(description)
    time = description["CreationTime"].strftime("%Y-%m-%dT%H:%M:%SZ")
    written = outputs(tmp_path / "out")
    lines = (
        written["in.csv.out"].decode().splitlines()
        + written["sub/more.csv.out"].decode().splitlines()
    )
    assert [re.sub(UUID, "<id>", line) for line in lines] == [
        f"0.93,<id>,{time}",
        f"0.12,<id>,{time}",
        f"0.93,<id>,{time}",
    ]
    assert len({line.split(",")[1] for line in lines}) == 3
    inputs, outputs_ = capture_manifests(tmp_path, description)
    assert inputs == [{"prefix": str(tmp_path / "in") + "/"}, "in.csv", "sub/more.csv"]
    assert outputs_ == [{"prefix": str(tmp_path / "out") + "/"}, "in.csv.out", "sub/more.csv.out"]


def test_capture_with_inference_ids_json_lines(session: Session, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", {"in.jsonl": "[1,2]\n[3,4]\n", "bad.jsonl": "[5,6]\n"})
    description, _ = run_job(
        session,
        tmp_path,
        JSONL_SCORES_HANDLER,
        TransformInput={"ContentType": "application/jsonlines"},
        TransformOutput={"Accept": "application/jsonlines"},
        ModelClientConfig={"InvocationsMaxRetries": 0},
        DataCaptureConfig={
            "DestinationS3Uri": str(tmp_path / "capture"),
            "GenerateInferenceId": True,
        },
    )
    assert description["TransformJobStatus"] == "Failed"  # bad.jsonl has no score
    records = [json.loads(line) for line in outputs(tmp_path / "out")["in.jsonl.out"].splitlines()]
    assert [r["score"] for r in records] == [0.9, 0.1]
    for record in records:
        assert list(record) == ["score", "SageMakerInferenceId", "SageMakerInferenceTime"]
        assert re.fullmatch(UUID, record["SageMakerInferenceId"])
        assert re.fullmatch(TIME, record["SageMakerInferenceTime"])
    inputs, outputs_ = capture_manifests(tmp_path, description)
    assert inputs[1:] == ["bad.jsonl", "in.jsonl"]
    assert outputs_[1:] == ["in.jsonl.out"], "only the outputs that were written"


# --- create-time rejection -----------------------------------------------------------------


def test_a_bad_jsonpath_is_rejected_at_create_time(session: Session, tmp_path: Path) -> None:
    make_model(session, tmp_path, BINARY_ECHO_HANDLER)
    request = job_request(
        input_uri=str(tmp_path / "in"),
        output_path=str(tmp_path / "out"),
        TransformOutput={"Accept": "text/csv"},
        DataProcessing={"OutputFilter": "$[0:2,246:]"},
    )
    with pytest.raises(ValidationError) as caught:
        session.create_transform_job(**request)
    assert caught.value.field == "DataProcessing.OutputFilter"
    assert "Invalid JsonPath: $[0:2,246:]: only one range is supported" in str(caught.value)
    assert session.list_transform_jobs()["TransformJobSummaries"] == []
