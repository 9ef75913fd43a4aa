"""The record pipeline for one input object, as a short sequence of streaming stages.

read → decompress → split → [InputFilter] → batch → invoke (concurrently, in order)
→ [split responses per record, join, OutputFilter, inference ids] → assemble → write.
Everything up to the batch runs on a read-ahead thread, so the next payload is ready (and
a remote input is being fetched) while the model works on this one.

Every stage is a lazy iterator, so bytes flow through in chunks and memory stays bounded
by the payload limit times the concurrency, not by the object's size. The bracketed
stages (``processing``) run only when the job asks for them: with default DataProcessing
and no GenerateInferenceId, records and responses pass through untouched, as fast as
before.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from batchtransform.data.assemble import assemble
from batchtransform.data.batch import Batch, batch_blocks, in_blocks
from batchtransform.data.compression import decompress
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
from batchtransform.data.split import record_separator, split_blocks, split_records
from batchtransform.data.tolerant import tolerant_stream

__all__ = ["PipelineSettings", "PipelineStats", "transform_stream"]

T = TypeVar("T")


@dataclass(frozen=True)
class PipelineSettings:
    """How to turn one object into requests and back, with the API's spellings and defaults.

    ``max_payload_bytes`` is MaxPayloadInMB in bytes; 0 means no limit. ``processing`` is
    the per-record work of DataProcessing and GenerateInferenceId; None means none.
    ``read_ahead`` cuts the next mini-batches on a thread while the model works: worth it
    for an object of many batches, not for a small one already in memory, whose one batch
    would wait for the thread to start (a thread per object, with many objects).
    """

    compression: str = "None"  # CompressionType
    split_type: str = "None"  # SplitType
    batch_strategy: str = "MultiRecord"  # BatchStrategy
    max_payload_bytes: int = 6 * 1024 * 1024
    max_concurrent: int = 1  # MaxConcurrentTransforms
    assemble_with: str = "None"  # AssembleWith
    processing: RecordProcessing | None = None
    read_ahead: bool = True


@dataclass
class PipelineStats:
    """Counters a caller can read while the stream runs (progress) or after it (metrics).

    They count what has passed each stage so far: ``records`` and ``batches`` include the
    few read ahead for concurrent requests. ``bytes_in`` is compressed bytes read,
    ``bytes_out`` the output bytes produced.
    """

    records: int = 0
    batches: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    failed_records: int = 0  # left out of the output (record errors only)

    def count_input(self, chunk: bytes) -> None:
        self.bytes_in += len(chunk)

    def count_record(self, record: bytes) -> None:
        self.records += 1

    def count_block(self, block: list[bytes]) -> None:
        self.records += len(block)

    def count_batch_records(self, batch: Batch) -> None:
        self.records += batch.count

    def count_batch(self, batch: Batch) -> None:
        self.batches += 1

    def count_output(self, chunk: bytes) -> None:
        self.bytes_out += len(chunk)


def transform_stream(
    chunks: Iterable[bytes],
    settings: PipelineSettings,
    invoke: Callable[[Batch], bytes],
    stats: PipelineStats | None = None,
    errors: RecordErrors | None = None,
    probe: Callable[[Batch], bytes] | None = None,
) -> Generator[bytes, None, None]:
    """Yield the output bytes of one object, given its raw bytes and a way to call the model.

    ``invoke`` gets each Batch (so an error can name ``first_record``) and returns the
    response body; it may run on worker threads when ``max_concurrent`` > 1. Its errors,
    and DataError from the data, propagate unchanged: the caller knows the object's name
    and adds it. Settings are checked when called, before anything is read. Closing the
    returned generator early waits for the requests in flight and frees their threads.

    Split checks each record against the payload limit as it is read, so an oversized
    record (or, for SplitType None, an oversized object) fails without being buffered
    whole. SplitType None yields one record, hence one batch whatever the strategy.

    With ``errors`` (the job tolerates bad records), a record that fails is added there
    and left out of the output instead of failing the object (``tolerant``); ``probe``
    then calls the model once, without the retries ``invoke`` makes, for the halves of a
    failing batch.
    """
    stats = PipelineStats() if stats is None else stats
    limit = settings.max_payload_bytes
    raw = _observe(chunks, stats.count_input)
    data = decompress(raw, settings.compression)
    if errors is not None:
        return tolerant_stream(data, settings, invoke, probe or invoke, stats, errors)
    framed = settings.batch_strategy == "MultiRecord"
    processing = settings.processing
    if processing is not None:
        records = split_records(data, settings.split_type, limit or None, framed=framed)
        return _processed_stream(
            _observe(records, stats.count_record), settings, processing, invoke, stats
        )
    if settings.split_type == "Line" and framed and limit:
        batches = _observe(line_batches(data, limit), stats.count_batch_records)
        return _answers(batches, settings, invoke, stats)
    blocks = split_blocks(data, settings.split_type, limit or None, framed=framed)
    return _answers(
        _batches(_observe(blocks, stats.count_block), settings), settings, invoke, stats
    )


def _processed_stream(
    records: Iterator[bytes],
    settings: PipelineSettings,
    processing: RecordProcessing,
    invoke: Callable[[Batch], bytes],
    stats: PipelineStats,
) -> Generator[bytes, None, None]:
    """The pipeline with DataProcessing or inference ids: records one at a time through the
    filters; when responses are split per record, each goes out as its own record.

    The invoke step returns each batch with its response, so the output side knows how
    many records the response answers and which; the originals wait for the join.
    """
    if not processing.processes_output:
        batches = _batches(in_blocks(filter_inputs(records, processing)), settings)
        return _answers(batches, settings, invoke, stats)
    originals = OriginalRecords() if processing.joins else None
    if originals is not None:
        records = originals.remember(records)
    if processing.filters_input:
        records = filter_inputs(records, processing)
    batches = _observe(_batches(in_blocks(records), settings), stats.count_batch)
    answered = ordered_map(_answered(invoke), _ahead(batches, settings), settings.max_concurrent)
    outputs = process_responses(answered, processing, originals)
    output = _observe(assemble(outputs, settings.assemble_with), stats.count_output)
    return _closing(output, answered)


def _answers(
    batches: Iterable[Batch],
    settings: PipelineSettings,
    invoke: Callable[[Batch], bytes],
    stats: PipelineStats,
) -> Generator[bytes, None, None]:
    """Call the model and assemble its responses as they are: no per-record work."""
    batches = _observe(batches, stats.count_batch)
    responses = ordered_map(invoke, _ahead(batches, settings), settings.max_concurrent)
    output = _observe(assemble(responses, settings.assemble_with), stats.count_output)
    return _closing(output, responses)


def _ahead(batches: Iterable[Batch], settings: PipelineSettings) -> Iterable[Batch]:
    return read_ahead(batches) if settings.read_ahead else batches


def _batches(blocks: Iterable[list[bytes]], settings: PipelineSettings) -> Iterator[Batch]:
    separator = record_separator(settings.split_type)
    return batch_blocks(blocks, settings.batch_strategy, settings.max_payload_bytes, separator)


def _answered(invoke: Callable[[Batch], bytes]) -> Callable[[Batch], tuple[Batch, bytes]]:
    def call(batch: Batch) -> tuple[Batch, bytes]:
        return batch, invoke(batch)

    return call


def _closing(
    output: Iterator[bytes], responses: Generator[T, None, None]
) -> Generator[bytes, None, None]:
    """Yield the output; if the caller stops early, stop the model calls now.

    Closing ``responses`` waits for calls in flight and shuts their threads down at once,
    rather than whenever the abandoned generators are garbage collected.
    """
    try:
        yield from output
    finally:
        responses.close()


def _observe(items: Iterable[T], observe: Callable[[T], None]) -> Iterator[T]:
    """Pass items through unchanged, showing each to ``observe`` as it flows past."""
    for item in items:
        observe(item)
        yield item
