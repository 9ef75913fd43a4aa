"""The pipeline of a job that tolerates bad records (``record_errors``): a record that fails
is set aside with its reason, and the others still get their outputs.

read → split → per record: [InputFilter] → batch → per batch: invoke → [split responses,
join, OutputFilter] → assemble. A batch whose request or per-record work fails is cut in
halves, each half tried again, until the failing records stand alone: with k bad records in
a batch of n, about 2·k·log2(n) extra requests. The first request of a batch and the request
of a lone record get the job's retries; the halves in between are tried once, since a
transient failure there only means one more halving.

The common job (SplitType Line, MultiRecord, a payload limit, no DataProcessing) keeps the
ordinary pipeline's fast path (``lines.line_batches``): batches are cut straight from the
byte stream, and a batch's records are split out of its payload only when it fails, for
bisection. Otherwise records travel in lists, as in the ordinary pipeline
(``split_blocks``, ``batch_blocks``), and a batch's records are a slice of them, taken only
by reference, so a job with nothing failing pays little for the tolerance. Every record
keeps its number within the object, so the errors file and the model's error messages name
the record as it is in the input, even after InputFilter dropped some. With no failure the
requests and the output are exactly those of the ordinary pipeline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

from batchtransform.data.assemble import assemble
from batchtransform.data.batch import Batch, batch_blocks
from batchtransform.data.lines import line_batches
from batchtransform.data.ordered import ordered_map
from batchtransform.data.processing import (
    OriginalRecords,
    RecordProcessing,
    filter_inputs,
    process_responses,
)
from batchtransform.data.readahead import read_ahead
from batchtransform.data.record_errors import RecordErrors
from batchtransform.data.split import record_separator, split_blocks
from batchtransform.errors import DataError, ModelError, one_line

if TYPE_CHECKING:
    from batchtransform.data.pipeline import PipelineSettings, PipelineStats

__all__ = ["tolerant_stream"]

Invoke = Callable[[Batch], bytes]


@dataclass(frozen=True)
class _Block:
    """Consecutive records as sent, with their numbers and the records as read (the same
    list when no InputFilter changed them)."""

    sent: list[bytes]
    numbers: Sequence[int]
    originals: list[bytes]


@dataclass(frozen=True)
class _Unit:
    """A batch as the ordinary pipeline would send it, with the records it carries (None
    on the Line fast path: they are split out of the payload if the batch fails)."""

    batch: Batch
    block: _Block | None


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
    units: Iterator[_Unit]
    if settings.split_type == "Line" and framed and limit and settings.processing is None:
        units = _line_units(line_batches(data, limit), stats)
    else:
        read = split_blocks(data, settings.split_type, limit or None, framed=framed)
        units = _units(_numbered(read, settings.processing, errors, stats), settings, stats)
    bisector = _Bisector(settings, invoke, probe, errors, stats)
    outputs = ordered_map(bisector.run, read_ahead(units), settings.max_concurrent)
    output = assemble(chain.from_iterable(outputs), settings.assemble_with)
    return _closing(_counted_output(output, stats), outputs)


def _numbered(
    read: Iterable[list[bytes]],
    processing: RecordProcessing | None,
    errors: RecordErrors,
    stats: PipelineStats,
) -> Iterator[_Block]:
    """The blocks as read, numbered, and filtered when InputFilter asks for it."""
    filtering = processing is not None and processing.filters_input
    for records in read:
        first = stats.records + 1
        stats.records += len(records)
        numbers = range(first, first + len(records))
        if not filtering:
            yield _Block(records, numbers, records)
            continue
        assert processing is not None
        block = _filtered(records, numbers, processing, errors, stats)
        if block.sent:
            yield block


def _filtered(
    records: list[bytes],
    numbers: range,
    processing: RecordProcessing,
    errors: RecordErrors,
    stats: PipelineStats,
) -> _Block:
    """The records InputFilter applies to, as it selects them; the others are noted."""
    sent: list[bytes] = []
    kept: list[int] = []
    originals: list[bytes] = []
    for number, original in zip(numbers, records, strict=True):
        try:
            sent.append(next(filter_inputs((original,), processing)))
        except DataError as exc:
            exc.record = number
            _note(errors, stats, number, original, exc)
            continue
        kept.append(number)
        originals.append(original)
    return _Block(sent, kept, originals)


def _units(
    blocks: Iterator[_Block], settings: PipelineSettings, stats: PipelineStats
) -> Iterator[_Unit]:
    """The batches of the sent records, each with its records: the batcher packs exactly
    as the ordinary pipeline does, and the blocks wait beside it until batched."""
    window = _Window()
    separator = record_separator(settings.split_type)
    batches = batch_blocks(
        window.feed(blocks), settings.batch_strategy, settings.max_payload_bytes, separator
    )
    for batch in batches:
        stats.batches += 1
        block = window.take(batch.count)
        yield _Unit(Batch(batch.payload, block.numbers[0], batch.count), block)


def _line_units(batches: Iterator[Batch], stats: PipelineStats) -> Iterator[_Unit]:
    """The fast path's batches, as they are: no record is an object of its own until its
    batch fails."""
    for batch in batches:
        stats.records += batch.count
        stats.batches += 1
        yield _Unit(batch, None)


def _line_block(batch: Batch) -> _Block:
    """The records of a fast-path batch: its payload is its Line records joined by "\n"
    (``lines.line_batches``), and they were sent as read."""
    records = batch.payload.split(b"\n")
    return _Block(records, range(batch.first_record, batch.first_record + batch.count), records)


class _Window:
    """The blocks given to the batcher and not yet wholly batched. The batcher and the
    taker run on one thread (the read-ahead), and batches come in order, so each take is
    the next ``count`` records."""

    def __init__(self) -> None:
        self.blocks: deque[_Block] = deque()
        self.offset = 0  # records of blocks[0] already taken

    def feed(self, blocks: Iterable[_Block]) -> Iterator[list[bytes]]:
        for block in blocks:
            self.blocks.append(block)
            yield block.sent

    def take(self, count: int) -> _Block:
        taken: list[_Block] = []
        while count:
            block, start = self.blocks[0], self.offset
            end = min(start + count, len(block.sent))
            taken.append(_slice(block, start, end))
            count -= end - start
            if end == len(block.sent):
                self.blocks.popleft()
                self.offset = 0
            else:
                self.offset = end
        return taken[0] if len(taken) == 1 else _joined(taken)


def _slice(block: _Block, start: int, end: int) -> _Block:
    if start == 0 and end == len(block.sent):
        return block
    sent = block.sent[start:end]
    originals = sent if block.originals is block.sent else block.originals[start:end]
    return _Block(sent, block.numbers[start:end], originals)


def _joined(blocks: list[_Block]) -> _Block:
    sent = [record for block in blocks for record in block.sent]
    same = all(block.originals is block.sent for block in blocks)
    originals = sent if same else [record for block in blocks for record in block.originals]
    return _Block(sent, [number for block in blocks for number in block.numbers], originals)


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
        return self._attempt(unit.batch, unit.block, self.invoke)

    def _attempt(self, batch: Batch, block: _Block | None, call: Invoke) -> list[bytes]:
        try:
            return self._outputs(batch, block, call(batch))
        except (ModelError, DataError) as exc:
            block = _line_block(batch) if block is None else block
            if len(block.sent) == 1:
                _note(self.errors, self.stats, block.numbers[0], block.originals[0], exc)
                return []
        middle = len(block.sent) // 2
        outputs: list[bytes] = []
        for start, end in ((0, middle), (middle, len(block.sent))):
            half = _slice(block, start, end)
            payload = self.separator.join(half.sent)
            call = self.invoke if end - start == 1 else self.probe
            outputs += self._attempt(Batch(payload, half.numbers[0], end - start), half, call)
        return outputs

    def _outputs(self, batch: Batch, block: _Block | None, response: bytes) -> list[bytes]:
        """The response as it goes to assembly: whole, or one output record per record."""
        if not self.per_record:
            return [response]
        assert self.processing is not None and block is not None  # no fast path then
        originals = None
        if self.processing.joins:
            originals = OriginalRecords()
            for _ in originals.remember(block.originals):
                pass
        return list(process_responses([(batch, response)], self.processing, originals))


def _note(
    errors: RecordErrors, stats: PipelineStats, number: int, original: bytes, exc: Exception
) -> None:
    errors.add(number, one_line(str(exc)), original)
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
