"""Record-level errors: the opt-in that lets a bad record fail alone, not its whole object.

SageMaker fails an object for one bad record. With ``BATCHTRANSFORM_MAX_FAILED_RECORDS``
in the job's ``Environment`` (a count such as ``10``, or a percentage of the job's records
such as ``1%``), a record that fails (the model's error after retries, an InputFilter or
OutputFilter that does not apply, a response that cannot be split per record) is left out
of the object's ``.out`` and written to the object's errors file instead, one JSON object a
line, in record order::

    {"record": 7, "error": "...", "input": "the record as text"}
    {"record": 9, "error": "...", "input_base64": "AAEC..."}

``record`` is the record's 1-based number within its object, as every other error names it;
binary records (RecordIO, TFRecord, or text that is not UTF-8) come as base64. The errors
file is ``<S3OutputPath>/_errors/<key relative to the input prefix>.errors.jsonl``, or under
the prefix ``BATCHTRANSFORM_RECORD_ERRORS_PATH`` names. The job fails, as it would without
the setting, once more records failed than the threshold allows.

This module stays light (no numpy, no data plane) because the controller and the service
read the threshold too.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ERRORS_FOLDER",
    "ERRORS_PATH_VARIABLE",
    "ERRORS_SUFFIX",
    "MAX_FAILED_RECORDS_VARIABLE",
    "FailedRecordLimit",
    "RecordErrors",
    "RecordFailure",
    "errors_part_url",
    "errors_url",
    "limit_from",
]

MAX_FAILED_RECORDS_VARIABLE = "BATCHTRANSFORM_MAX_FAILED_RECORDS"
ERRORS_PATH_VARIABLE = "BATCHTRANSFORM_RECORD_ERRORS_PATH"
ERRORS_FOLDER = "_errors"
ERRORS_SUFFIX = ".errors.jsonl"

_LIMIT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*")


@dataclass(frozen=True)
class FailedRecordLimit:
    """How many records a job may lose: ``count`` of them, or ``percent`` of its records."""

    text: str
    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> FailedRecordLimit:
        """``"10"`` or ``"1.5%"``; ValueError naming the variable for anything else."""
        match = _LIMIT.fullmatch(text)
        if match is None or (not match.group(2) and "." in match.group(1)):
            raise ValueError(
                f"{MAX_FAILED_RECORDS_VARIABLE}={text!r} is neither a whole number of records "
                "nor a percentage such as 1%"
            )
        if match.group(2):
            percent = float(match.group(1))
            if percent > 100:
                raise ValueError(f"{MAX_FAILED_RECORDS_VARIABLE}={text!r} is over 100%")
            return cls(text.strip(), percent=percent)
        return cls(text.strip(), count=int(match.group(1)))

    def allowed(self, total_records: int) -> int:
        """How many failed records a job of ``total_records`` records may have."""
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return math.floor(total_records * self.percent / 100 + 1e-9)

    def describe_excess(self, failed: int, total_records: int) -> str | None:
        """Why the job fails for its failed records, or None while they are within the limit."""
        allowed = self.allowed(total_records)
        if failed <= allowed:
            return None
        share = f" of {total_records}" if self.percent is not None else ""
        return (
            f"{failed} records failed{share}, more than the {allowed} that "
            f"{MAX_FAILED_RECORDS_VARIABLE}={self.text} allows"
        )


def limit_from(environment: Mapping[str, str] | None) -> FailedRecordLimit | None:
    """The job's limit from its Environment; None when record errors are not asked for."""
    value = (environment or {}).get(MAX_FAILED_RECORDS_VARIABLE)
    if value is None or not value.strip():
        return None
    return FailedRecordLimit.parse(value)


def errors_url(output_path: str, output_url: str, environment: Mapping[str, str] | None) -> str:
    """Where the errors of the object whose output is ``output_url`` go.

    The output is ``<S3OutputPath>/<relative>.out``; its errors file is
    ``<prefix>/<relative>.errors.jsonl``, the prefix being the job's
    ``BATCHTRANSFORM_RECORD_ERRORS_PATH`` or ``<S3OutputPath>/_errors``.
    """
    base = output_path.rstrip("/")
    relative = output_url.removesuffix(".out")
    relative = relative[len(base) :] if relative.startswith(base) else relative.rsplit("/", 1)[-1]
    prefix = (environment or {}).get(ERRORS_PATH_VARIABLE) or f"{base}/{ERRORS_FOLDER}"
    return f"{prefix.rstrip('/')}/{relative.lstrip('/')}{ERRORS_SUFFIX}"


def errors_part_url(url: str, part: int, parts: int) -> str:
    """Where one byte range of an object writes its errors until the object's output is
    put together; the parts are then joined, in order, into ``url``."""
    return f"{url}.part-{part:05d}-of-{parts:05d}"


@dataclass(frozen=True)
class RecordFailure:
    """One record left out of the output: its number, why, and the record as read."""

    record: int
    error: str
    data: bytes

    def as_json(self, binary: bool) -> str:
        entry: dict[str, object] = {"record": self.record, "error": self.error}
        text = None if binary else _text(self.data)
        if text is None:
            entry["input_base64"] = base64.b64encode(self.data).decode("ascii")
        else:
            entry["input"] = text
        return json.dumps(entry, ensure_ascii=False)


class RecordErrors:
    """The failed records of one object (or byte range), gathered as the pipeline runs.

    Requests of one object may run on several threads (MaxConcurrentTransforms), so
    additions take a lock; the lines come out sorted by record number whatever the order
    the failures were found in. ``binary`` says the records are not text (RecordIO,
    TFRecord), so every record is written as base64.
    """

    def __init__(self, binary: bool = False) -> None:
        self.binary = binary
        self._failures: list[RecordFailure] = []
        self._lock = threading.Lock()

    def add(self, record: int, error: str, data: bytes) -> None:
        with self._lock:
            self._failures.append(RecordFailure(record, error, data))

    def renumber(self, before: int) -> None:
        """Make the numbers of a byte range's records the object's: ``before`` records of
        the object come before the range's first."""
        with self._lock:
            self._failures = [
                RecordFailure(f.record + before, f.error, f.data) for f in self._failures
            ]

    @property
    def count(self) -> int:
        return len(self._failures)

    @property
    def failures(self) -> list[RecordFailure]:
        with self._lock:
            return sorted(self._failures, key=lambda failure: failure.record)

    def jsonl(self) -> bytes:
        """The errors file's contents: one JSON object a line, in record order."""
        lines = [failure.as_json(self.binary) + "\n" for failure in self.failures]
        return "".join(lines).encode("utf-8")


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
