"""The pipeline of a job that tolerates bad records (``record_errors``): a record that fails
is set aside with its reason, and the others still get their outputs.

read → split → per record: [InputFilter] → batch → per batch: invoke → [split responses,
join, OutputFilter] → assemble. A batch whose request or per-record work fails is cut in
halves, each half tried again, until the failing records stand alone: with k bad records in
a batch of n, about 2·k·log2(n) extra requests. The first request of a batch and the request
of a lone record get the job's retries; the halves in between are tried once, since a
transient failure there only means one more halving.

Every record keeps its number within the object, so the errors file and the model's error
messages name the record as it is in the input, even after InputFilter dropped some. With
no failure the requests and the output are exactly those of the ordinary pipeline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

from batchtransform.data.assemble import assemble
from batchtransform.data.batch import Batch, batch_blocks, in_blocks
from batchtransform.data.ordered import ordered_map
from batchtransform.data.processing import (
    OriginalRecords,
    RecordProcessing,
    filter_inputs,
    process_responses,
)
from batchtransform.data.readahead import read_ahead
from batchtransform.data.record_errors import RecordErrors
from batchtransform.data.split import record_separator, split_records
from batchtransform.errors import DataError, ModelError, one_line

if TYPE_CHECKING:
    from batchtransform.data.pipeline import PipelineSettings, PipelineStats

__all__ = ["tolerant_stream"]

Invoke = Callable[[Batch], bytes]


@dataclass(frozen=True)
class _Record:
    number: int  # 1-based, within the object
    original: bytes  # as read (the errors file's and the join's copy)
    sent: bytes  # after InputFilter, in the form the batch carries


@dataclass(frozen=True)
class _Unit:
    """A batch as the ordinary pipeline would send it, with the records it carries."""

    batch: Batch
    records: list[_Record]


def tolerant_stream(
    data: Iterable[bytes],
    settings: PipelineSettings,
    invoke: Invoke,
    probe: Invoke,
    stats: PipelineStats,
    errors: RecordErrors,
) -> Generator[bytes, None, None]:
    """The output of one object, its failed records left out and added to ``errors``.

    ``invoke`` calls the model with the job's retries, ``probe`` once; ``data`` is the
    decompressed stream.
    """
    framed = settings.batch_strategy == "MultiRecord"
    limit = settings.max_payload_bytes
    records = split_records(data, settings.split_type, limit or None, framed=framed)
    numbered = _counted(enumerate(records, start=1), stats)
    units = _units(numbered, settings, errors, stats)
    bisector = _Bisector(settings, invoke, probe, errors, stats)
    outputs = ordered_map(bisector.run, read_ahead(units), settings.max_concurrent)
    output = assemble(chain.from_iterable(outputs), settings.assemble_with)
    return _closing(_counted_output(output, stats), outputs)


def _counted(numbered: Iterable[tuple[int, bytes]], stats: PipelineStats) -> Iterator[_Record]:
    for number, record in numbered:
        stats.records += 1
        yield _Record(number, record, record)


def _units(
    records: Iterator[_Record],
    settings: PipelineSettings,
    errors: RecordErrors,
    stats: PipelineStats,
) -> Iterator[_Unit]:
    """The batches of the records that passed InputFilter, each with its records.

    The batcher packs the sent bytes exactly as the ordinary pipeline does; the records
    wait in a queue beside it and are taken a batch at a time, in order.
    """
    waiting: deque[_Record] = deque()
    processing = settings.processing

    def kept() -> Iterator[bytes]:
        for record in records:
            if processing is not None and processing.filters_input:
                filtered = _filtered(record, processing, errors, stats)
                if filtered is None:
                    continue
                record = filtered
            waiting.append(record)
            yield record.sent

    separator = record_separator(settings.split_type)
    batches = batch_blocks(
        in_blocks(kept()), settings.batch_strategy, settings.max_payload_bytes, separator
    )
    for batch in batches:
        stats.batches += 1
        records_of_batch = [waiting.popleft() for _ in range(batch.count)]
        numbered_batch = Batch(batch.payload, records_of_batch[0].number, batch.count)
        yield _Unit(numbered_batch, records_of_batch)


def _filtered(
    record: _Record, processing: RecordProcessing, errors: RecordErrors, stats: PipelineStats
) -> _Record | None:
    """The record as InputFilter selects it, or None (and an error noted) when it cannot."""
    try:
        sent = next(filter_inputs((record.original,), processing))
    except DataError as exc:
        exc.record = record.number
        _note(errors, stats, record, exc)
        return None
    return _Record(record.number, record.original, sent)


class _Bisector:
    """Runs one unit: the whole batch first, then halves of whatever part of it fails."""

    def __init__(
        self,
        settings: PipelineSettings,
        invoke: Invoke,
        probe: Invoke,
        errors: RecordErrors,
        stats: PipelineStats,
    ) -> None:
        self.invoke, self.probe, self.errors, self.stats = invoke, probe, errors, stats
        self.separator = record_separator(settings.split_type)
        self.processing = settings.processing
        self.per_record = self.processing is not None and self.processing.processes_output

    def run(self, unit: _Unit) -> list[bytes]:
        return self._attempt(unit.batch, unit.records, self.invoke)

    def _attempt(self, batch: Batch, records: list[_Record], call: Invoke) -> list[bytes]:
        try:
            return self._outputs(batch, records, call(batch))
        except (ModelError, DataError) as exc:
            if len(records) == 1:
                _note(self.errors, self.stats, records[0], exc)
                return []
        middle = len(records) // 2
        halves = (records[:middle], records[middle:])
        return [
            out for half in halves for out in self._attempt(*self._batch(half), self._call(half))
        ]

    def _call(self, records: list[_Record]) -> Invoke:
        return self.invoke if len(records) == 1 else self.probe

    def _batch(self, records: list[_Record]) -> tuple[Batch, list[_Record]]:
        payload = self.separator.join(record.sent for record in records)
        return Batch(payload, records[0].number, len(records)), records

    def _outputs(self, batch: Batch, records: list[_Record], response: bytes) -> list[bytes]:
        """The response as it goes to assembly: whole, or one output record per record."""
        if not self.per_record:
            return [response]
        assert self.processing is not None
        originals = None
        if self.processing.joins:
            originals = OriginalRecords()
            for _ in originals.remember(record.original for record in records):
                pass
        return list(process_responses([(batch, response)], self.processing, originals))


def _note(errors: RecordErrors, stats: PipelineStats, record: _Record, exc: Exception) -> None:
    errors.add(record.number, one_line(str(exc)), record.original)
    stats.failed_records = errors.count


def _counted_output(output: Iterator[bytes], stats: PipelineStats) -> Iterator[bytes]:
    for chunk in output:
        stats.bytes_out += len(chunk)
        yield chunk


def _closing(
    output: Iterator[bytes], outputs: Generator[list[bytes], None, None]
) -> Generator[bytes, None, None]:
    try:
        yield from output
    finally:
        outputs.close()
