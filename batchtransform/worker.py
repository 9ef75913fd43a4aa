"""What one instance does: start the model once, then transform work items one by one.

``TransformWorker`` is what an ``instance.InstanceFactory`` builds in each instance. It
fetches the model into its own model folder, starts the runtime, resolves the batching
knobs (request, then the model's execution parameters, then defaults) and for each item
streams input → records → mini-batches → model → output, committing the output only when
every batch succeeded.
"""

from __future__ import annotations

import contextlib
import io
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast

from batchtransform import config, logs, objects
from batchtransform.assembly import part_url
from batchtransform.data import ranges
from batchtransform.data.batch import Batch
from batchtransform.data.pipeline import PipelineSettings, PipelineStats, transform_stream
from batchtransform.data.record_errors import (
    RecordErrors,
    errors_part_url,
    errors_url,
    limit_from,
)
from batchtransform.errors import (
    BatchTransformError,
    DataError,
    InstanceLostError,
    ModelError,
    RuntimeStartError,
    StorageError,
    one_line,
)
from batchtransform.executors.base import Report
from batchtransform.instance import ItemResult
from batchtransform.model_data import fetch_model_data
from batchtransform.plan import WorkItem
from batchtransform.prefetch import Prefetcher
from batchtransform.runtimes import Runtime, RuntimeContext, create_runtime
from batchtransform.runtimes.base import DEFAULT_STARTUP_TIMEOUT, STARTUP_TIMEOUT_ENV
from batchtransform.runtimes.serial import SerialRuntime
from batchtransform.shapes import BatchOptions, ModelSpec, TransformJobSpec, normalize_strategy
from batchtransform.supervision import SupervisedRuntime
from batchtransform.telemetry import InvocationStats

MIB = 1024 * 1024
_PROGRESS_EVERY_SECONDS = 0.5
_RETRY_BACKOFF_SECONDS = (0.1, 0.5, 2.0)
_BINARY_SPLITS = ("RecordIO", "TFRecord")  # their records go to the errors file as base64
# An item cut off by a storage outage where no request-level retry could help (a stream
# broken halfway) is run again from its start this often before it counts as failed.
_OUTAGE_RERUNS = 2
_STOPPED_WHILE_STARTING = (
    "Instance stopped before it was ready: the job is ending "
    "(a stop was asked for, or another instance failed to start)."
)


class TransformWorker:
    """One instance's worker (the executor's ``Worker``)."""

    def __init__(self, job: TransformJobSpec, model: ModelSpec, index: int) -> None:
        self.job, self.model, self.index = job, model, index
        stream = logs.stream_name(index)
        folder = logs.logs_dir(job.name)
        self.data_log = logs.DataLog(folder / f"{stream}{logs.DATA_LOG_SUFFIX}")
        self.model_log: TextIO = logs.redirect_output(folder / f"{stream}{logs.MODEL_LOG_SUFFIX}")
        self.runtime: SupervisedRuntime | None = None
        self.settings = PipelineSettings()
        self._input_url = ""  # the current item's input, and its aligned bytes
        self._span = (0, 0)
        self._record_base: int | None = None  # records before them, once an error asks
        self.prefetcher = Prefetcher()
        # Set by an executor that takes futures for results (``executors.local``): a small
        # object's S3 upload then goes on while the next object is transformed.
        self.commit_behind = False
        self._committer: ThreadPoolExecutor | None = None
        # Record errors (opt-in): a bad record is set aside instead of failing its object.
        self.tolerant = limit_from(job.environment) is not None
        self.calls = InvocationStats()  # the current item's model calls
        self._restarts_before = 0  # the runtime's restarts when the current item began

    def start(self) -> None:
        try:
            self.runtime = self._start_runtime()
            resolved = self._resolve_batching(self.runtime)
        except SystemExit:  # SIGTERM: the job is ending, not this instance failing
            self.data_log.write(_STOPPED_WHILE_STARTING)
            raise
        except BaseException as exc:
            self.data_log.write(f"Instance failed to start: {one_line(str(exc))}")
            traceback.print_exc(file=self.model_log)
            raise
        self.data_log.write(resolved.describe())
        self.settings = PipelineSettings(
            compression=self.job.compression,
            split_type=self.job.split_type,
            batch_strategy=resolved.strategy or "MultiRecord",
            max_payload_bytes=(resolved.max_payload_mb or 0) * MIB,
            max_concurrent=resolved.max_concurrent or 1,
            assemble_with=self.job.assemble_with,
            processing=self.job.record_processing(),
        )

    def process(
        self, item: WorkItem, report: Report, reruns: int = _OUTAGE_RERUNS
    ) -> ItemResult | Future[ItemResult]:
        """Transform one item. One that a storage outage cut off is run again from its start
        (its partial output discarded), ``reruns`` times at most, before it counts as
        failed: a stream broken halfway cannot be resumed. With ``commit_behind``, a small
        object's S3 output is uploaded on a thread and its result is a future."""
        stats = PipelineStats()
        self.calls = InvocationStats()
        self._restarts_before = self.runtime.restarts if self.runtime is not None else 0
        reporter = _Throttled(report, lambda: self._counters(stats))
        if self.runtime is not None:  # a call stuck past the timeout ends the instance
            self.runtime.watchdog.arm(item.display, report, self.job.invocation_retries + 1)
        errors = RecordErrors(self.job.split_type in _BINARY_SPLITS) if self.tolerant else None
        behind = self.commit_behind and item.small and item.output_url.startswith("s3://")
        try:
            with self._output(item, behind) as output:
                chunks = self._chunks(item)
                settings = replace(self.settings, read_ahead=False) if item.small else self.settings
                records = transform_stream(
                    chunks, settings, self._invoke, stats, errors, self._probe
                )
                for chunk in records:
                    output.write(chunk)
                    reporter.maybe_send()
                if errors is not None:  # before the output: an output means its errors are out
                    self._write_errors(item, errors)
            if behind:
                return self._commit_later(item, cast(io.BytesIO, output).getvalue(), stats)
            stamp = self._stamp(item, output)
        except InstanceLostError:
            raise  # not the file's doing: the executor runs it elsewhere
        except StorageError as exc:
            if not (exc.transient and reruns > 0):
                return self._failed(item, stats, str(exc))
            self.data_log.write(f"{item.display}: {one_line(str(exc))}; running it again")
            return self.process(item, report, reruns - 1)
        except BatchTransformError as exc:
            return self._failed(item, stats, str(self._absolute(item, exc)))
        except FileNotFoundError as exc:
            return self._failed(item, stats, f"the input object was not found: {exc}")
        except Exception as exc:  # an unexpected bug must fail the item, not the instance
            traceback.print_exc(file=self.model_log)
            return self._failed(item, stats, f"InternalServerError: {type(exc).__name__}: {exc}")
        return replace(ItemResult(True, None, **self._counters(stats)), output_stamp=stamp)

    def _output(self, item: WorkItem, behind: bool) -> contextlib.AbstractContextManager[BinaryIO]:
        """Where the item's output goes: its object (a range's part), written atomically,
        or (``behind``) memory, uploaded afterwards by ``_commit_later``."""
        if behind:
            return contextlib.nullcontext(cast(BinaryIO, io.BytesIO()))
        return objects.atomic_writer(part_url(item), self.job.output_kms_key)

    def _commit_later(
        self, item: WorkItem, data: bytes, stats: PipelineStats
    ) -> Future[ItemResult]:
        """Upload a small object's output on the commit pool; the future's result is the
        item's, as ``process`` would have returned it."""
        if self._committer is None:
            self._committer = ThreadPoolExecutor(4, thread_name_prefix="commit")
        return self._committer.submit(self._commit, item, data, self._counters(stats))

    def _commit(self, item: WorkItem, data: bytes, counters: dict[str, Any]) -> ItemResult:
        try:
            url = item.output_url
            stamp = objects.write_bytes(url, data, self.job.output_kms_key) or objects.stamp(url)
        except (StorageError, OSError) as exc:
            reason = str(exc)
        except Exception as exc:  # a bug must fail the item, not the instance
            traceback.print_exc(file=self.model_log)
            reason = f"InternalServerError: {type(exc).__name__}: {exc}"
        else:
            return replace(ItemResult(True, None, **counters), output_stamp=stamp)
        line = one_line(f"{item.label}: {reason}")
        self.data_log.write(line)
        return ItemResult(False, line, **counters)

    def prefetch(self, item: WorkItem) -> None:
        """Start reading a small item's input before its turn (``executors.local``)."""
        self.prefetcher.start(item)

    def stop(self) -> None:
        self.prefetcher.close()
        if self._committer is not None:  # uploads under way finish: their results are out
            self._committer.shutdown(wait=True)
        if self.runtime is not None:
            self.runtime.stop()
            self.runtime = None
        self.data_log.close()
        self.model_log.flush()  # the instance leaves without the interpreter's teardown

    def _start_runtime(self) -> SupervisedRuntime:
        """One runtime per container; the containers of a pipeline run in series. Kept
        serving by ``supervision``: restarted from the same model folders if it dies."""
        count = len(self.model.containers)
        contexts = [self._container_context(n) for n in range(count)]
        runtime = SupervisedRuntime(
            lambda: _runtime_for(contexts),
            self.data_log.write,
            self.model_log,
            timeout=float(self.job.invocation_timeout) * count,
        )
        runtime.start()
        return runtime

    def _container_context(self, number: int) -> RuntimeContext:
        """Container ``number``'s model, fetched into a folder of its own, and its settings."""
        container = self.model.containers[number]
        pipeline = len(self.model.containers) > 1
        instance_dir = config.job_dir(self.job.name) / f"instance-{self.index}"
        model_dir = (
            instance_dir / f"container-{number + 1}" if pipeline else instance_dir
        ) / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        if container.model_data is not None:
            try:
                fetch_model_data(container.model_data, model_dir)
            except Exception as exc:
                raise RuntimeStartError(f"ClientError: could not fetch the model: {exc}") from exc
        name = (container.hostname or f"container-{number + 1}") if pipeline else ""
        self.model_log.write(
            f"Container {number + 1} of {len(self.model.containers)}: {container.image}\n"
        )
        return RuntimeContext(
            image=container.image,
            model_dir=Path(model_dir),
            environment=self.job.container_environment(container),
            log=self.model_log,
            invocation_timeout=float(self.job.invocation_timeout),
            startup_timeout=_startup_timeout(),
            name=name,
            notice=self.data_log.write,
        )

    def _resolve_batching(self, runtime: Runtime) -> BatchOptions:
        params = runtime.execution_parameters()
        from_model = None
        if params is not None:
            from_model = BatchOptions(
                strategy=normalize_strategy(params.batch_strategy),
                max_payload_mb=params.max_payload_in_mb,
                max_concurrent=params.max_concurrent_transforms,
            )
        return self.job.batch.resolve(from_model)

    def _write_errors(self, item: WorkItem, errors: RecordErrors) -> None:
        """The object's errors file, written whole, when it has failed records."""
        if not errors.count:
            return
        url = errors_url(self.job.output_path, item.output_url, self.job.environment)
        if item.ranged:  # joined with the object's other ranges' when its output is
            errors.renumber(self.records_before())
            url = errors_part_url(url, item.part, item.parts)
        objects.write_bytes(url, errors.jsonl())
        self.data_log.write(f"{item.display}: {errors.count} records failed; see {url}")

    def _stamp(self, item: WorkItem, output: BinaryIO) -> str | None:
        """The committed output's (a range's: its part's) size and ETag or mtime, for
        resume: from the commit's own answer where there is one, else from the store."""
        return objects.committed_stamp(output) or objects.stamp(part_url(item))

    def _probe(self, batch: Batch) -> bytes:
        """One attempt, no retries: for the halves of a failing batch (record errors)."""
        return self._invoke(batch, attempts=1)

    def _invoke(self, batch: Batch, attempts: int | None = None) -> bytes:
        """One mini-batch through the model, retried as ModelClientConfig says."""
        assert self.runtime is not None
        attempts = attempts or self.job.invocation_retries + 1
        calls = self.calls
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                return self.runtime.invoke(batch.payload, self.job.content_type, self.job.accept)
            except ModelError as exc:
                if not exc.retryable or attempt + 1 == attempts:
                    raise _located(exc, batch, attempt + 1, self.records_before()) from exc
                calls.retried()
                time.sleep(_RETRY_BACKOFF_SECONDS[min(attempt, len(_RETRY_BACKOFF_SECONDS) - 1)])
            finally:
                calls.observe(time.perf_counter() - started)
        raise AssertionError("unreachable")

    def _chunks(self, item: WorkItem) -> Iterator[bytes]:
        """The item's input bytes: the whole object, or the whole records of a range (its
        ends aligned to record boundaries here, as it is read: ``data.ranges``)."""
        self._record_base, self._input_url = None, item.input_url
        if item.start is None or item.end is None:
            self._span = (0, item.size)
            fetched = self.prefetcher.chunks(item)
            if fetched is not None:
                return fetched
            if item.small:  # one request, without first asking the store for its size
                return _whole(item.input_url)
            return objects.iter_chunks(item.input_url)
        split = self.job.split_type
        self._span = ranges.aligned_span(item.input_url, item.size, item.start, item.end, split)
        return ranges.read_range(item.input_url, *self._span)

    def records_before(self) -> int:
        """How many records of the object come before the current item's first: 0 for a
        whole object; counted (by reading up to there) the first time an error asks."""
        if self._record_base is None:
            first, url = self._span[0], self._input_url
            self._record_base = ranges.records_before(url, first, self.job.split_type)
        return self._record_base

    def _absolute(self, item: WorkItem, exc: BatchTransformError) -> BatchTransformError:
        """A range's data error with its record number and byte offset made the object's."""
        if item.ranged and isinstance(exc, DataError):
            if exc.record is not None:
                exc.record += self.records_before()
            if exc.offset is not None:
                exc.offset += self._span[0]
        return exc

    def _failed(self, item: WorkItem, stats: PipelineStats, reason: str) -> ItemResult:
        line = one_line(f"{item.label}: {reason}")
        self.data_log.write(line)
        return ItemResult(False, line, **self._counters(stats))

    def _counters(self, stats: PipelineStats) -> dict[str, Any]:
        """The item's counters so far, its model calls' included, as ItemResult has them."""
        if self.runtime is not None:
            self.calls.restarts = self.runtime.restarts - self._restarts_before
        return {**_counters(stats), **self.calls.counters()}


def _whole(url: str) -> Iterator[bytes]:
    """A small object's bytes, read in one request when the pipeline first asks."""
    data = objects.read_bytes(url)
    if data:
        yield data


def _runtime_for(contexts: list[RuntimeContext]) -> Runtime:
    runtimes = [create_runtime(context) for context in contexts]
    return runtimes[0] if len(runtimes) == 1 else SerialRuntime(runtimes)


def _startup_timeout() -> float:
    """How long a model server may take to become healthy: the default, or the environment's
    BATCHTRANSFORM_STARTUP_TIMEOUT (seconds)."""
    try:
        return config.seconds(STARTUP_TIMEOUT_ENV, DEFAULT_STARTUP_TIMEOUT, zero_allowed=False)
    except ValueError as exc:
        raise RuntimeStartError(str(exc)) from None


def _located(exc: ModelError, batch: Batch, attempts: int, base: int = 0) -> ModelError:
    """The same model error, saying which records it concerns (numbered within the object:
    ``base`` records come before the item's first) and how often it was tried."""
    first = batch.first_record + base
    last = first + batch.count - 1
    records = f"record {last}" if batch.count == 1 else f"records {first}-{last}"
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    return ModelError(
        f"{exc.message} ({records}, after {tries})", status=exc.model_status, body=exc.body
    )


def _counters(stats: PipelineStats) -> dict[str, Any]:
    """The stats that ItemResult carries (typed Any: they fill its int fields only)."""
    return {k: v for k, v in asdict(stats).items() if k in ItemResult.__dataclass_fields__}


class _Throttled:
    """Sends the live counters to the controller at most every half second."""

    def __init__(self, report: Report, counters: Callable[[], dict[str, Any]]) -> None:
        self.report, self.counters = report, counters
        self.last = time.monotonic()

    def maybe_send(self) -> None:
        now = time.monotonic()
        if now - self.last >= _PROGRESS_EVERY_SECONDS:
            self.last = now
            self.report(self.counters())
