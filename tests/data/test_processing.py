"""DataProcessing through transform_stream: filters, join, split-back, CSV quoting, errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from batchtransform.data.batch import Batch
from batchtransform.data.pipeline import PipelineSettings, transform_stream
from batchtransform.data.processing import (
    RecordProcessing,
    format_csv_row,
    parse_csv_row,
    split_response,
)
from batchtransform.errors import DataError

CSV_TYPES = {"content_type": "text/csv", "accept": "text/csv"}
JSONL_TYPES = {"content_type": "application/jsonlines", "accept": "application/jsonlines"}
JSON_TYPES = {"content_type": "application/json", "accept": "application/json"}


def run(
    data: bytes,
    model: Callable[[bytes], bytes],
    split_type: str = "Line",
    strategy: str = "MultiRecord",
    assemble_with: str = "Line",
    max_payload_bytes: int = 6 * 1024 * 1024,
    concurrency: int = 1,
    **processing: str,
) -> bytes:
    settings = PipelineSettings(
        split_type=split_type,
        batch_strategy=strategy,
        max_payload_bytes=max_payload_bytes,
        max_concurrent=concurrency,
        assemble_with=assemble_with,
        processing=RecordProcessing(**processing),
    )
    return b"".join(transform_stream([data], settings, lambda batch: model(batch.payload)))


def per_line(answer: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """A model answering each line of a payload with one line."""
    return lambda payload: b"".join(answer(line) + b"\n" for line in payload.split(b"\n"))


def csv_scores(line: bytes) -> bytes:
    return {b"5.1,3.5": b"0.93", b"6.2,2.9": b"0.12"}[line]


def json_score(line: bytes) -> bytes:
    return json.dumps({"score": sum(json.loads(line)) / 10}).encode()


IRIS = b"id1,5.1,3.5\nid2,6.2,2.9\n"
JSONL = b'{"id":"a","features":[1,2]}\n{"id":"b","features":[3,4]}\n'

CASES = [
    pytest.param(IRIS, per_line(csv_scores), {"input_filter": "$[1:]", "join_source": "Input", "output_filter": "$[0,-1]", **CSV_TYPES}, b"id1,0.93\nid2,0.12\n", id="reference-5.3"),
    pytest.param(IRIS, per_line(csv_scores), {"input_filter": "$[1:]", "join_source": "Input", **CSV_TYPES}, b"id1,5.1,3.5,0.93\nid2,6.2,2.9,0.12\n", id="csv-join-appends"),
    pytest.param(IRIS, per_line(lambda line: line.replace(b",", b";")), {"input_filter": "$[1:]", **CSV_TYPES}, b"5.1;3.5\n6.2;2.9\n", id="csv-input-filter-only"),
    pytest.param(IRIS, per_line(lambda line: b"1," + line), {"output_filter": "$[1:]", **CSV_TYPES}, IRIS, id="csv-output-filter-only"),
    pytest.param(IRIS, per_line(lambda line: b"p,q"), {"join_source": "Input", "output_filter": "$[0,3:]", **CSV_TYPES}, b"id1,p,q\nid2,p,q\n", id="csv-index-and-range"),
    pytest.param(JSONL, per_line(json_score), {"input_filter": "$.features", "join_source": "Input", "output_filter": "$['id','SageMakerOutput']", **JSONL_TYPES}, b'{"id":"a","SageMakerOutput":{"score":0.3}}\n{"id":"b","SageMakerOutput":{"score":0.7}}\n', id="reference-5.4-jsonl"),
    pytest.param(JSONL, per_line(json_score), {"input_filter": "$.features", "output_filter": "$.score", **JSONL_TYPES}, b"0.3\n0.7\n", id="jsonl-output-filter"),
    pytest.param(b'{"SageMakerOutput":1,"k":2}\n', per_line(lambda line: b"[9]"), {"join_source": "Input", **JSONL_TYPES}, b'{"SageMakerOutput":[9],"k":2}\n', id="join-overwrites-reserved-key-in-place"),
    pytest.param(b"[1,2,3]\n7\n", per_line(lambda line: b'"x"'), {"join_source": "Input", **JSONL_TYPES}, b'{"SageMakerInput":[1,2,3],"SageMakerOutput":"x"}\n{"SageMakerInput":7,"SageMakerOutput":"x"}\n', id="join-wraps-non-objects"),
    pytest.param(b"[1,2,3]", lambda body: b'{"label":0}', {"join_source": "Input", **JSON_TYPES}, b'{"SageMakerInput":[1,2,3],"SageMakerOutput":{"label":0}}', id="reference-5.4-document-array"),
    pytest.param(b'{"x":[1,2,3]}', lambda body: b'{\n  "label": 0\n}\n', {"join_source": "Input", **JSON_TYPES}, b'{"x":[1,2,3],"SageMakerOutput":{"label":0}}', id="reference-5.4-document-object-pretty-response"),
    pytest.param(JSONL, lambda body: b"[0.1, 0.2]", {"join_source": "Input", "output_filter": "$.SageMakerOutput", **JSONL_TYPES}, b"0.1\n0.2\n", id="json-array-response-one-element-per-record"),
    pytest.param('{"t":"é,ü"}\n'.encode(), per_line(lambda line: line), {"input_filter": "$.t", "output_filter": "$", **JSONL_TYPES, "join_source": "Input"}, '{"t":"é,ü","SageMakerOutput":"é,ü"}\n'.encode(), id="utf8-kept-not-escaped"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "model", "processing", "expected"), CASES)
def test_processing(
    data: bytes, model: Callable[[bytes], bytes], processing: dict[str, str], expected: bytes
):
    split_type = "None" if processing["content_type"] == "application/json" else "Line"
    assemble_with = "None" if split_type == "None" else "Line"
    output = run(data, model, split_type, assemble_with=assemble_with, **processing)
    assert output == expected


@pytest.mark.parametrize(
    ("strategy", "max_payload_bytes", "concurrency"),
    [("SingleRecord", 0, 1), ("MultiRecord", 12, 1), ("MultiRecord", 12, 3), ("MultiRecord", 0, 2)],
)
def test_join_pairs_records_with_responses_whatever_the_batching(
    strategy: str, max_payload_bytes: int, concurrency: int
):
    rows = b"".join(f"r{i},{i}\n".encode() for i in range(50))
    model = per_line(lambda line: str(int(line) * 2).encode())
    output = run(
        rows,
        model,
        strategy=strategy,
        max_payload_bytes=max_payload_bytes,
        concurrency=concurrency,
        input_filter="$[1]",
        join_source="Input",
        **CSV_TYPES,
    )
    assert output == b"".join(f"r{i},{i},{i * 2}\n".encode() for i in range(50))


def test_a_count_mismatch_fails_naming_the_first_record_of_the_batch():
    rows = b"a,1\nb,2\nc,3\nd,4\n"
    with pytest.raises(DataError) as caught:
        run(
            rows,
            lambda body: b"only one line\n",
            max_payload_bytes=8,
            join_source="Input",
            **CSV_TYPES,
        )
    assert caught.value.record == 1
    assert "1 non-empty lines for the 2 records 1-2" in str(caught.value)

    def drops_the_last(body: bytes) -> bytes:
        return b"x\n" if body.startswith(b"c") else body

    with pytest.raises(DataError, match=r"^record 3: .*0 non-empty lines for the 2 records 3-4"):
        run(
            rows,
            lambda b: b"" if b.startswith(b"c") else b,
            max_payload_bytes=8,
            join_source="Input",
            **CSV_TYPES,
        )
    assert run(rows, drops_the_last, max_payload_bytes=4, output_filter="$[0]", **CSV_TYPES)


def test_an_index_out_of_range_fails_naming_the_record():
    rows = b"a,1,x\nb,2\n"
    with pytest.raises(DataError, match=r"^record 2: InputFilter \$\[2\]: index 2 is out of range"):
        run(rows, per_line(lambda line: line), input_filter="$[2]", **CSV_TYPES)
    with pytest.raises(
        DataError, match=r"^record 2: OutputFilter \$\[3\]: index 3 is out of range"
    ):
        run(
            rows,
            per_line(lambda line: b"p"),
            join_source="Input",
            output_filter="$[3]",
            **CSV_TYPES,
        )


@pytest.mark.parametrize(
    ("data", "processing", "message"),
    [
        pytest.param(b"{bad json\n", {"input_filter": "$.a", **JSONL_TYPES}, "record 1: the input record is not valid JSON", id="bad-input-json"),
        pytest.param(b'a,"b\n', {"input_filter": "$[0]", **CSV_TYPES}, "record 1: the input record is not valid CSV: the quoted field at character 3 is not closed", id="unclosed-quote"),
        pytest.param(b'a,"b"c\n', {"input_filter": "$[0]", **CSV_TYPES}, "record 1: the input record is not valid CSV: character 6: a closing quote must be followed by a comma", id="text-after-quote"),
        pytest.param(b'{"a":1}\n{"b":2}\n', {"input_filter": "$.a", **JSONL_TYPES}, "record 2: InputFilter $.a: the object has no member 'a'", id="missing-member"),
    ],
)  # fmt: skip
def test_bad_records_fail_naming_them(data: bytes, processing: dict[str, str], message: str):
    with pytest.raises(DataError, match=f"^{re.escape(message)}"):
        run(data, per_line(lambda line: line), **processing)


def test_a_bad_response_line_names_its_record():
    with pytest.raises(
        DataError, match=r"^record 2: the model's response for this record is not valid JSON"
    ):
        run(JSONL, lambda body: b'{"ok":1}\n{oops\n', join_source="Input", **JSONL_TYPES)


def test_inference_ids_decorate_every_output_record():
    time = "2022-08-30T00:49:15Z"
    uuid = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    csv_out = run(
        IRIS, per_line(csv_scores), input_filter="$[1:]", inference_time=time, **CSV_TYPES
    )
    lines = csv_out.decode().splitlines()
    assert [
        re.fullmatch(rf"(0\.93|0\.12),({uuid}),{time}", line) is not None for line in lines
    ] == [True, True]
    assert len({line.split(",")[1] for line in lines}) == 2, "one id per record"

    json_out = run(
        JSONL,
        per_line(json_score),
        input_filter="$.features",
        output_filter="$.score",
        inference_time=time,
        **JSONL_TYPES,
    )
    records = [json.loads(line) for line in json_out.splitlines()]
    assert [list(r) for r in records] == [
        ["SageMakerOutput", "SageMakerInferenceId", "SageMakerInferenceTime"]
    ] * 2
    assert [r["SageMakerOutput"] for r in records] == [0.3, 0.7]
    assert all(
        re.fullmatch(uuid, r["SageMakerInferenceId"]) and r["SageMakerInferenceTime"] == time
        for r in records
    )

    objects = run(
        JSONL, per_line(lambda line: b"1"), join_source="Input", inference_time=time, **JSONL_TYPES
    )
    first = json.loads(objects.splitlines()[0])
    assert list(first) == [
        "id",
        "features",
        "SageMakerOutput",
        "SageMakerInferenceId",
        "SageMakerInferenceTime",
    ]


def test_default_processing_stages_leave_bytes_untouched():
    # only an InputFilter: responses pass through whole, not split or re-encoded
    body = b"anything\n\n  at all"
    assert (
        run(IRIS, lambda payload: body, input_filter="$[0]", assemble_with="None", **CSV_TYPES)
        == body
    )


SPLIT_BACK = [
    pytest.param(b"1\n2\n3\n", "csv", 3, [["1"], ["2"], ["3"]], id="csv-lines"),
    pytest.param(b"1\r\n\r\n2,x\r\n", "csv", 2, [["1"], ["2", "x"]], id="csv-crlf-and-empty-lines"),
    pytest.param(b"0.5", "csv", 1, [["0.5"]], id="csv-one-record-no-newline"),
    pytest.param(b'{"a":1}\n{"a":2}', "json", 2, [{"a": 1}, {"a": 2}], id="json-lines"),
    pytest.param(b"[[1,2],[3,4]]", "json", 2, [[1, 2], [3, 4]], id="json-array-per-record"),
    pytest.param(b"[\n  1,\n  2\n]\n", "json", 2, [1, 2], id="pretty-json-array"),
    pytest.param(b"[1,2]", "json", 1, [[1, 2]], id="one-record-whole-body"),
    pytest.param(b'{\n "a": 1\n}', "json", 1, [{"a": 1}], id="one-record-pretty-object"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "form", "count", "expected"), SPLIT_BACK)
def test_split_response(body: bytes, form: str, count: int, expected: list[object]):
    assert split_response(body, Batch(b"", 5, count), form) == expected


@pytest.mark.parametrize(
    ("body", "form", "count"),
    [(b"1\n2\n", "csv", 3), (b"", "csv", 1), (b"[1,2,3]", "json", 2), (b"1\n2\n3", "json", 2)],
)
def test_split_response_count_mismatch(body: bytes, form: str, count: int):
    with pytest.raises(DataError, match="per record") as caught:
        split_response(body, Batch(b"", 5, count), form)
    assert caught.value.record == 5


CSV_ROWS = [
    (["a", "b", "c"], "a,b,c"),
    (["a,b", "c"], '"a,b",c'),
    (['say "hi"', "x"], '"say ""hi""",x'),
    (["line\nbreak", "cr\rhere"], '"line\nbreak","cr\rhere"'),
    (["", "", ""], ",,"),
    ([" spaced ", "é"], " spaced ,é"),
    (["5'10\""], '"5\'10"""'),
]


@pytest.mark.parametrize(("fields", "row"), CSV_ROWS)
def test_csv_minimal_quoting_round_trip(fields: list[str], row: str):
    assert format_csv_row(fields) == row
    assert parse_csv_row(row) == fields


@pytest.mark.parametrize(
    ("row", "fields"),
    [
        ('"a","b"', ["a", "b"]),
        ('"",x', ["", "x"]),
        ('a"b,c', ['a"b', "c"]),
        ('"a""",b', ['a"', "b"]),
    ],
)
def test_csv_parsing_needless_and_stray_quotes(row: str, fields: list[str]):
    assert parse_csv_row(row) == fields


def test_settings_are_checked_when_called():
    settings = PipelineSettings(
        split_type="Line",
        processing=RecordProcessing(content_type="image/png", input_filter="$[0]"),
    )
    with pytest.raises(ValueError, match="ContentType 'image/png' cannot be processed per record"):
        transform_stream([], settings, lambda batch: b"")
    bad = PipelineSettings(
        split_type="Line", processing=RecordProcessing(accept="text/csv", output_filter="$[1:2,3:]")
    )
    with pytest.raises(ValueError, match="Invalid JsonPath"):
        transform_stream([], bad, lambda batch: b"")
