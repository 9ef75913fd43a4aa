"""DataProcessing per record: InputFilter before batching; split, join, OutputFilter after.

The flow of reference §5.1, for ``text/csv``, ``application/json`` and
``application/jsonlines`` records::

    record ─InputFilter─▶ sent ─(batched)─▶ model ─▶ response ─split per record─▶ result
      └───────────── (JoinSource=Input: the original record) ─────────┴─▶ joined ─OutputFilter─▶

* **CSV** records are rows parsed per RFC 4180 into lists of strings, and written back with
  minimal quoting (a field is quoted only if it holds ``,``, ``"``, CR or LF), so a row
  with needless quotes comes back without them. A ``"`` inside an unquoted field is kept
  as a character, as most CSV readers do; a quoted field that is not closed, or is
  followed by anything but a comma, fails the record.
* **JSON** records are parsed and written back compactly (no spaces, non-ASCII as UTF-8).
* **Join** always uses the original record: CSV fields are appended; a JSON object gains
  ``SageMakerOutput`` (replacing a member of that name in place); anything else becomes
  ``{"SageMakerInput": ..., "SageMakerOutput": ...}``. OutputFilter then applies to the
  joined record. The service side makes sure ContentType and Accept are of one format.
* **Splitting a response** back into per-record results (our choice; the service's
  behaviour is unconfirmed): a response needs one non-empty line per record. For JSON
  and JSON Lines, a one-record batch's whole response is its result (pretty-printed JSON
  included), and a response that is one JSON array with an element per record is split
  by element. Any other count fails the object, naming the batch's first record.

GenerateInferenceId decorates each output record last (``capture``), so it needs the same
per-record split.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from batchtransform.data.batch import Batch
from batchtransform.data.capture import with_inference_id
from batchtransform.data.jsonpath import JsonPath, parse_jsonpath
from batchtransform.errors import DataError

__all__ = [
    "CSV",
    "JSON",
    "OriginalRecords",
    "RecordProcessing",
    "filter_inputs",
    "format_csv_row",
    "parse_csv_row",
    "process_responses",
    "record_format",
]

CSV = "csv"
JSON = "json"
_FORMATS = {"text/csv": CSV, "application/json": JSON, "application/jsonlines": JSON}

_QUOTED_FIELD = re.compile(r'"((?:[^"]|"")*)"')
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def record_format(content_type: str | None) -> str | None:
    """``csv`` or ``json`` for the three types data processing supports, else None.

    Parameters (``; charset=utf-8``) and case are ignored, as in the runtime's codecs.
    """
    if content_type is None:
        return None
    return _FORMATS.get(content_type.split(";", 1)[0].strip().lower())


@dataclass(frozen=True)
class RecordProcessing:
    """What to do to each record: the job's DataProcessing, formats and inference ids.

    ``inference_time`` is the time GenerateInferenceId writes on every output record
    (``YYYY-MM-DDTHH:MM:SSZ``), or None when it is off.
    """

    content_type: str | None = None
    accept: str | None = None
    input_filter: str = "$"
    output_filter: str = "$"
    join_source: str = "None"
    inference_time: str | None = None

    @property
    def filters_input(self) -> bool:
        return self.input_filter != "$"

    @property
    def joins(self) -> bool:
        return self.join_source == "Input"

    @property
    def processes_output(self) -> bool:
        """Whether responses must be split into records (else they pass through whole)."""
        return self.joins or self.output_filter != "$" or self.inference_time is not None


def _required_format(content_type: str | None, member: str) -> str:
    found = record_format(content_type)
    if found is None:
        raise ValueError(
            f"{member} {content_type!r} cannot be processed per record; data processing "
            f"supports {', '.join(_FORMATS)}"
        )
    return found


# --- input side --------------------------------------------------------------------------


def filter_inputs(records: Iterable[bytes], processing: RecordProcessing) -> Iterator[bytes]:
    """Yield each record as InputFilter selects it, re-encoded in the ContentType's format.

    Settings are checked when called; a record the filter cannot apply to raises DataError
    naming it when reached.
    """
    path = parse_jsonpath(processing.input_filter)
    form = _required_format(processing.content_type, "ContentType")
    return _filtered(records, path, form)


def _filtered(records: Iterable[bytes], path: JsonPath, form: str) -> Iterator[bytes]:
    for number, record in enumerate(records, start=1):
        value = _decode(record, form, number, "the input record")
        yield _encode(_select(path, value, number, "InputFilter"), form)


class OriginalRecords:
    """The records sent, kept until their results come back, for JoinSource=Input.

    The batcher and the concurrent requests read a few batches ahead, so the originals wait
    in a queue that the output side empties in order, a batch at a time. The batcher runs
    on the read-ahead thread and the output side on the consumer's; a deque's appends and
    pops are atomic, and a batch is taken only after all its records were appended.
    """

    def __init__(self) -> None:
        self._waiting: deque[bytes] = deque()

    def remember(self, records: Iterable[bytes]) -> Iterator[bytes]:
        """Pass ``records`` through, keeping each one."""
        for record in records:
            self._waiting.append(record)
            yield record

    def take(self, count: int) -> list[bytes]:
        """The next ``count`` records, oldest first."""
        return [self._waiting.popleft() for _ in range(count)]


# --- output side -------------------------------------------------------------------------


def process_responses(
    answered: Iterable[tuple[Batch, bytes]],
    processing: RecordProcessing,
    originals: OriginalRecords | None = None,
) -> Iterator[bytes]:
    """Yield one encoded output record per input record, from each batch and its response.

    ``originals`` are the records sent, given exactly when joining. Settings are checked
    when called.
    """
    if (originals is not None) != processing.joins:
        raise ValueError("the original records are needed exactly when JoinSource=Input")
    stage = _OutputStage(
        processing,
        parse_jsonpath(processing.output_filter),
        _required_format(processing.accept, "Accept"),
        _required_format(processing.content_type, "ContentType") if processing.joins else "",
    )
    return stage.run(answered, originals)


@dataclass(frozen=True)
class _OutputStage:
    processing: RecordProcessing
    output_path: JsonPath
    form: str  # of the responses, hence of the output records
    input_form: str  # of the original records, when joining

    def run(
        self, answered: Iterable[tuple[Batch, bytes]], originals: OriginalRecords | None
    ) -> Iterator[bytes]:
        for batch, response in answered:
            results = split_response(response, batch, self.form)
            inputs = [None] * batch.count if originals is None else originals.take(batch.count)
            for offset, (original, result) in enumerate(zip(inputs, results, strict=True)):
                yield self._record(batch.first_record + offset, original, result)

    def _record(self, number: int, original: bytes | None, result: Any) -> bytes:
        value = result
        if original is not None:
            parsed = _decode(original, self.input_form, number, "the input record")
            value = _joined(parsed, result, self.input_form)
        value = _select(self.output_path, value, number, "OutputFilter")
        if self.processing.inference_time is not None:
            value = with_inference_id(value, self.form == CSV, self.processing.inference_time)
        return _encode(value, self.form)


def split_response(body: bytes, batch: Batch, form: str) -> list[Any]:
    """The parsed result of each record of ``batch`` in its response (rules: module doc)."""
    first = batch.first_record
    if batch.count == 1 and form == JSON:
        return [_decode(body, JSON, first, _RESPONSE)]
    if form == JSON:
        whole = _json_or_none(body)
        if isinstance(whole, list) and len(whole) == batch.count:
            return whole
    lines = [line for line in (raw.removesuffix(b"\r") for raw in body.split(b"\n")) if line]
    if len(lines) != batch.count:
        raise _count_mismatch(len(lines), batch, form)
    return [_decode(line, form, first + i, _RESPONSE) for i, line in enumerate(lines)]


_RESPONSE = "the model's response for this record"


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _count_mismatch(lines: int, batch: Batch, form: str) -> DataError:
    last = batch.first_record + batch.count - 1
    unit = "one line" if form == CSV else "one line, or one JSON array element,"
    return DataError(
        f"the model's response has {lines} non-empty lines for the {batch.count} records "
        f"{batch.first_record}-{last} it was sent; to join or filter outputs (or add "
        f"inference ids), a response needs {unit} per record",
        record=batch.first_record,
    )


def _joined(original: Any, result: Any, form: str) -> Any:
    if form == CSV:
        return [*original, *result]  # the result's fields after the input's
    if isinstance(original, dict):
        return {**original, "SageMakerOutput": result}
    return {"SageMakerInput": original, "SageMakerOutput": result}


# --- records -----------------------------------------------------------------------------


def _select(path: JsonPath, value: Any, number: int, member: str) -> Any:
    if path.is_root:
        return value
    try:
        return path.select(value)
    except ValueError as exc:
        raise DataError(f"{member} {path.text}: {exc}", record=number) from None


def _decode(data: bytes, form: str, number: int, subject: str) -> Any:
    """A CSV row (list of strings) or a JSON value; DataError names the record."""
    try:
        if form == CSV:
            return parse_csv_row(data.decode("utf-8"))
        return json.loads(data)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        kind = "CSV" if form == CSV else "JSON"
        raise DataError(f"{subject} is not valid {kind}: {exc}", record=number) from None


def _encode(value: Any, form: str) -> bytes:
    """CSV: a row from a list of fields or a single field. JSON: compact, UTF-8."""
    if form == CSV:
        return format_csv_row(value if isinstance(value, list) else [value]).encode("utf-8")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_csv_row(text: str) -> list[str]:
    """The fields of one CSV row per RFC 4180 (ValueError if a quoted field is malformed)."""
    if '"' not in text:
        return text.split(",")
    fields: list[str] = []
    pos = 0
    while True:
        if text.startswith('"', pos):
            match = _QUOTED_FIELD.match(text, pos)
            if match is None:
                raise ValueError(f"the quoted field at character {pos + 1} is not closed")
            fields.append(match.group(1).replace('""', '"'))
            pos = match.end()
            if pos < len(text) and text[pos] != ",":
                raise ValueError(
                    f"character {pos + 1}: a closing quote must be followed by a comma or "
                    "the end of the row"
                )
        else:
            end = text.find(",", pos)
            end = len(text) if end < 0 else end
            fields.append(text[pos:end])
            pos = end
        if pos == len(text):
            return fields
        pos += 1


def format_csv_row(fields: list[str]) -> str:
    """One CSV row with minimal RFC 4180 quoting: only fields that need it are quoted."""
    return ",".join(_quoted(field) if _NEEDS_QUOTES.search(field) else field for field in fields)


def _quoted(field: str) -> str:
    return '"' + field.replace('"', '""') + '"'
