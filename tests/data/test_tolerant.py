"""Record-level errors in the pipeline: bad records set aside, MultiRecord batches bisected."""

from __future__ import annotations

import base64
import json
import threading

import pytest
from framings import recordio_frame

from batchtransform.data.batch import Batch
from batchtransform.data.pipeline import PipelineSettings, PipelineStats, transform_stream
from batchtransform.data.processing import RecordProcessing
from batchtransform.data.record_errors import (
    FailedRecordLimit,
    RecordErrors,
    errors_url,
    limit_from,
)
from batchtransform.errors import DataError, ModelError


class Model:
    """Upper-cases each line; fails any payload holding a line that starts with ``bad``.

    Records every payload it was sent and how (``invoke`` retried or ``probe`` once).
    """

    def __init__(self, status: int = 400) -> None:
        self.status = status
        self.calls: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def answer(self, batch: Batch, how: str) -> bytes:
        with self.lock:
            self.calls.append((how, batch.payload))
        lines = batch.payload.split(b"\n")
        if any(line.startswith(b"bad") for line in lines):
            raise ModelError("the model refused the input", status=self.status, body="bad")
        return batch.payload.upper()

    def invoke(self, batch: Batch) -> bytes:
        return self.answer(batch, "invoke")

    def probe(self, batch: Batch) -> bytes:
        return self.answer(batch, "probe")


def lines(count: int, bad: set[int]) -> bytes:
    return b"".join((b"bad-%d\n" if n in bad else b"rec-%d\n") % n for n in range(1, count + 1))


def run(
    data: bytes, settings: PipelineSettings, model: Model, binary: bool = False
) -> tuple[bytes, RecordErrors, PipelineStats]:
    errors, stats = RecordErrors(binary), PipelineStats()
    chunks = iter([data[i : i + 7] for i in range(0, len(data), 7)])
    output = b"".join(transform_stream(chunks, settings, model.invoke, stats, errors, model.probe))
    return output, errors, stats


def expected_lines(count: int, bad: set[int]) -> bytes:
    return b"".join(b"REC-%d\n" % n for n in range(1, count + 1) if n not in bad)


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize(
    "limit",
    [0, 1024 * 1024],  # records in lists; the Line fast path (records split out on failure)
)
def test_multirecord_batch_is_bisected_to_its_bad_records(concurrency: int, limit: int) -> None:
    bad = {3, 17, 18, 40}
    settings = PipelineSettings(
        split_type="Line",
        batch_strategy="MultiRecord",
        max_payload_bytes=limit,  # either way one batch of all 40 records
        max_concurrent=concurrency,
        assemble_with="Line",
    )
    model = Model()
    output, errors, stats = run(lines(40, bad), settings, model)
    assert output.split(b"\n")[:-1] == expected_lines(40, bad).split(b"\n")[:-1]
    failures = errors.failures
    assert [f.record for f in failures] == sorted(bad)
    assert [f.data for f in failures] == [b"bad-%d" % n for n in sorted(bad)]
    assert all("the model refused the input" in f.error for f in failures)
    assert stats.failed_records == 4 and stats.records == 40
    # the whole batch and each lone record with retries; the halves in between once
    assert model.calls[0] == ("invoke", lines(40, bad).rstrip(b"\n"))
    lone = [payload for how, payload in model.calls if how == "invoke"][1:]
    assert all(b"\n" not in payload for payload in lone)
    assert any(how == "probe" for how, _ in model.calls)
    # far fewer requests than one per record
    assert len(model.calls) < 40


def test_line_fast_path_numbers_records_as_read_across_batches() -> None:
    # CRLF endings and empty lines are normalised away before batches are cut: the errors
    # name the records (not the lines) and hold them without their "\r"
    data = b"rec-1\r\n\nbad-2\r\nrec-3\n\n\nrec-4\nbad-5\nrec-6\r\nbad-7"
    settings = PipelineSettings(split_type="Line", max_payload_bytes=18, assemble_with="Line")
    model = Model()
    output, errors, stats = run(data, settings, model)
    assert output == b"REC-1\nREC-3\nREC-4\nREC-6\n"
    assert [(f.record, f.data) for f in errors.failures] == [
        (2, b"bad-2"),
        (5, b"bad-5"),
        (7, b"bad-7"),
    ]
    assert stats.records == 7 and stats.failed_records == 3
    # the whole batches (sent with retries) are those of the pipeline without record errors
    sent: list[bytes] = []
    b"".join(transform_stream(iter([data]), settings, lambda b: sent.append(b.payload) or b""))
    assert sent == [b"rec-1\nbad-2\nrec-3", b"rec-4\nbad-5\nrec-6", b"bad-7"]
    whole = [payload for how, payload in model.calls if how == "invoke" and b"\n" in payload]
    assert whole == sent[:2]


def test_a_batch_without_bad_records_is_sent_once_and_output_is_unchanged() -> None:
    settings = PipelineSettings(split_type="Line", max_payload_bytes=30, assemble_with="None")
    model = Model()
    data = lines(20, set())
    output, errors, _ = run(data, settings, model)
    plain = b"".join(transform_stream(iter([data]), settings, lambda batch: batch.payload.upper()))
    assert output == plain
    assert errors.count == 0
    assert all(how == "invoke" for how, _ in model.calls)


def test_single_record_failures_name_each_record() -> None:
    bad = {1, 5}
    settings = PipelineSettings(
        split_type="Line", batch_strategy="SingleRecord", assemble_with="Line"
    )
    output, errors, _ = run(lines(6, bad), settings, Model())
    assert output == expected_lines(6, bad)
    lines_out = errors.jsonl().decode().splitlines()
    assert [json.loads(line)["record"] for line in lines_out] == [1, 5]
    assert json.loads(lines_out[0])["input"] == "bad-1"


def test_binary_records_are_written_as_base64() -> None:
    records = [b"ok-1", b"bad\x00\xff", b"ok-3"]
    settings = PipelineSettings(split_type="RecordIO", batch_strategy="SingleRecord")
    model = Model()
    _, errors, _ = run(b"".join(map(recordio_frame, records)), settings, model, binary=True)
    (line,) = errors.jsonl().decode().splitlines()
    entry = json.loads(line)
    assert entry["record"] == 2
    assert base64.b64decode(entry["input_base64"]) == b"bad\x00\xff"


def test_input_filter_failures_keep_the_input_record_numbers() -> None:
    data = b'{"x":1}\n{"y":2}\n{"x":3}\n'
    processing = RecordProcessing(
        content_type="application/json", accept="application/json", input_filter="$.x"
    )
    settings = PipelineSettings(
        split_type="Line", assemble_with="Line", max_payload_bytes=0, processing=processing
    )
    output, errors, _ = run(data, settings, Model())
    assert output == b"1\n3\n"
    (failure,) = errors.failures
    assert failure.record == 2 and failure.data == b'{"y":2}'
    assert "InputFilter" in failure.error


def test_response_that_cannot_be_split_is_bisected_and_joined_per_record() -> None:
    """A model that answers a batch of 3 or more with one line too few: the join cannot
    pair lines with records, so the batch is halved until every part pairs up."""

    def invoke(batch: Batch) -> bytes:
        answers = [line.upper() for line in batch.payload.split(b"\n")]
        if len(answers) >= 3:
            answers.pop()
        if b'"BAD"' in answers:
            raise ModelError("bad", status=400)
        return b"\n".join(answers)

    data = b'"a"\n"b"\n"bad"\n"c"\n"d"\n'
    processing = RecordProcessing(
        content_type="application/jsonlines", accept="application/jsonlines", join_source="Input"
    )
    settings = PipelineSettings(
        split_type="Line", assemble_with="Line", max_payload_bytes=0, processing=processing
    )
    errors = RecordErrors()
    output = b"".join(transform_stream(iter([data]), settings, invoke, None, errors))
    assert output.decode().splitlines() == [
        '{"SageMakerInput":"a","SageMakerOutput":"A"}',
        '{"SageMakerInput":"b","SageMakerOutput":"B"}',
        '{"SageMakerInput":"c","SageMakerOutput":"C"}',
        '{"SageMakerInput":"d","SageMakerOutput":"D"}',
    ]
    assert [f.record for f in errors.failures] == [3]


def test_without_errors_a_bad_record_still_fails_the_object() -> None:
    settings = PipelineSettings(split_type="Line", assemble_with="Line")
    model = Model()
    with pytest.raises(ModelError):
        b"".join(transform_stream(iter([lines(3, {2})]), settings, model.invoke))


def test_corrupt_framing_still_fails_the_object() -> None:
    settings = PipelineSettings(split_type="RecordIO", batch_strategy="SingleRecord")
    with pytest.raises(DataError):
        run(b"\x00\x01\x02\x03 not recordio", settings, Model())


@pytest.mark.parametrize(
    ("text", "total", "allowed"),
    [("10", 1000, 10), ("0", 5, 0), ("1%", 1000, 10), ("1.5%", 1000, 15), ("50%", 3, 1)],
)
def test_limits(text: str, total: int, allowed: int) -> None:
    assert FailedRecordLimit.parse(text).allowed(total) == allowed


@pytest.mark.parametrize("text", ["-1", "1.5", "abc", "101%", "1 %%"])
def test_bad_limits_are_refused_naming_the_variable(text: str) -> None:
    with pytest.raises(ValueError, match="BATCHTRANSFORM_MAX_FAILED_RECORDS"):
        FailedRecordLimit.parse(text)


def test_limit_from_environment_and_excess() -> None:
    assert limit_from({}) is None
    limit = limit_from({"BATCHTRANSFORM_MAX_FAILED_RECORDS": "2"})
    assert limit is not None
    assert limit.describe_excess(2, 100) is None
    assert "3 records failed" in (limit.describe_excess(3, 100) or "")


@pytest.mark.parametrize(
    ("output_path", "output", "environment", "expected"),
    [
        ("s3://b/out", "s3://b/out/a/x.csv.out", {}, "s3://b/out/_errors/a/x.csv.errors.jsonl"),
        ("s3://b/out/", "s3://b/out/x.out", {}, "s3://b/out/_errors/x.errors.jsonl"),
        (
            "s3://b/out",
            "s3://b/out/x.csv.out",
            {"BATCHTRANSFORM_RECORD_ERRORS_PATH": "s3://c/errs/"},
            "s3://c/errs/x.csv.errors.jsonl",
        ),
    ],
)
def test_errors_url(
    output_path: str, output: str, environment: dict[str, str], expected: str
) -> None:
    assert errors_url(output_path, output, environment) == expected
