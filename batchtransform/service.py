"""The operations, with SageMaker's request and response shapes: the home of business rules.

The CLI, the SDK and the HTTP API all call ``Service.call(operation, request)`` (or the
method of that name). Requests are validated in full before anything is recorded; responses
carry ``datetime`` timestamps (the HTTP layer turns them into epoch seconds, as AWS sends).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from batchtransform import config, pricing, runtimes, shapes
from batchtransform.cloudwatch_logs import LOGS_OPERATIONS, LogsService
from batchtransform.data.record_errors import MAX_FAILED_RECORDS_VARIABLE, limit_from
from batchtransform.errors import ConflictError, NotFoundError, ValidationError
from batchtransform.jobs import JobStatus, transition
from batchtransform.store import JobRecord, ModelRecord, Query, SampleRecord, Store, open_store
from batchtransform.validation import validate_request

__all__ = ["LOGS_OPERATIONS", "OPERATIONS", "Service", "epoch_seconds"]

# Starts a new job's controller, given the job's record; returns the controller's process
# id when it runs in a process of its own.
Launcher = Callable[[JobRecord], int | None]

OPERATIONS = (
    "CreateModel",
    "DescribeModel",
    "ListModels",
    "DeleteModel",
    "CreateTransformJob",
    "DescribeTransformJob",
    "ListTransformJobs",
    "StopTransformJob",
    "ResumeTransformJob",  # ours: SageMaker has no such operation
)
# Operations of ours, checked against the botocore shape of the same request.
_VALIDATED_AS = {"ResumeTransformJob": "StopTransformJob"}

_ECHOED_JOB_MEMBERS = (
    "MaxConcurrentTransforms",
    "ModelClientConfig",
    "MaxPayloadInMB",
    "BatchStrategy",
    "Environment",
    "TransformInput",
    "TransformOutput",
    "DataCaptureConfig",
    "TransformResources",
    "DataProcessing",
    "ExperimentConfig",
)
_ECHOED_MODEL_MEMBERS = (
    "PrimaryContainer",
    "Containers",
    "InferenceExecutionConfig",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
)
_SCAN_PAGE = 500  # jobs read at a time when looking for dead controllers
_JOB_SORT_KEYS = {"Name": "name", "CreationTime": "creation_time", "Status": "status"}
_MODEL_SORT_KEYS = {"Name": "name", "CreationTime": "creation_time"}


class Service:
    """Model and transform-job operations over one store.

    ``launcher`` starts the controller of a new job; the default runs it in a detached
    process so that the job outlives the caller, and its process id is recorded at once, so
    a controller that dies before it reports in (a broken environment) still ends its job.
    Tests and debugging may pass a function that runs ``controller.run_job`` in this
    process.
    """

    def __init__(self, store: Store | None = None, launcher: Launcher | None = None) -> None:
        self.store = store or open_store()
        self.launcher = launcher or _launch_detached
        self.logs = LogsService(self._job_ended)

    def call(self, operation: str, request: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run ``operation`` (``CreateTransformJob``, ...) on a request document."""
        if operation not in OPERATIONS:
            raise ValidationError(
                f"Unknown operation {operation!r}; supported: {', '.join(OPERATIONS)}."
            )
        request = dict(request or {})
        validate_request(_VALIDATED_AS.get(operation, operation), request)
        method: Callable[[dict[str, Any]], dict[str, Any]] = getattr(self, _snake(operation))
        return method(request)

    def call_logs(self, operation: str, request: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a CloudWatch Logs read operation (``GetLogEvents``, ...) on the jobs' logs."""
        return self.logs.call(operation, request)

    # Models

    def create_model(self, request: dict[str, Any]) -> dict[str, Any]:
        shapes.check_model_rules(request)
        for container in shapes.ModelSpec.from_request(request).containers:
            runtimes.check_image(container.image)
        name = request["ModelName"]
        record = ModelRecord(name, config.arn("model", name), time.time(), request)
        if not self.store.add_model(record):
            raise ConflictError(f'Cannot create already existing model "{record.arn}".')
        return {"ModelArn": record.arn}

    def describe_model(self, request: dict[str, Any]) -> dict[str, Any]:
        record = self._model(request["ModelName"])
        response: dict[str, Any] = {"ModelName": record.name, "ModelArn": record.arn}
        response["CreationTime"] = _datetime(record.creation_time)
        response.update(_echo(record.request, _ECHOED_MODEL_MEMBERS))
        return response

    def list_models(self, request: dict[str, Any]) -> dict[str, Any]:
        query = _query(request, _MODEL_SORT_KEYS)
        records = self.store.list_models(_page_plus_one(query))
        summaries = [
            {"ModelName": r.name, "ModelArn": r.arn, "CreationTime": _datetime(r.creation_time)}
            for r in records[: query.limit]
        ]
        return _paged({"Models": summaries}, query, len(records))

    def delete_model(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["ModelName"]
        if not self.store.delete_model(name):
            raise NotFoundError(f'Could not find model "{config.arn("model", name)}".')
        return {}

    # Transform jobs

    def create_transform_job(self, request: dict[str, Any]) -> dict[str, Any]:
        shapes.check_transform_job_rules(request)
        _check_record_errors(request)
        pricing.price_table()  # a bad price file is named now, not at the job's first Describe
        model = self._model(request["ModelName"])
        name, now = request["TransformJobName"], time.time()
        record = JobRecord(
            name=name,
            arn=config.arn("transform-job", name),
            model_name=model.name,
            status=JobStatus.IN_PROGRESS.value,
            creation_time=now,
            last_modified_time=now,
            request=request,
            model=model.request,
        )
        if not self.store.add_job(record):
            raise ConflictError(
                f'Transform job "{record.arn}" already exists; job names are unique.',
                code="ResourceInUse",
            )
        self._launch(record)
        return {"TransformJobArn": record.arn}

    def resume_transform_job(self, request: dict[str, Any]) -> dict[str, Any]:
        """Ours, not SageMaker's: run a Failed or Stopped job again from where it was.

        The job goes back to InProgress and its controller runs only the work items with
        no committed output (or whose output changed since its commit); the rest keep
        their outputs and count as done. A job whose controller died was ended Failed when
        it was read, so it can be resumed too. The job runs with the model document it was
        created with, but its model must still exist.
        """
        record = self._job(request["TransformJobName"])
        if record.status not in (JobStatus.FAILED.value, JobStatus.STOPPED.value):
            raise ConflictError(
                f'Cannot resume transform job "{record.arn}": it is {record.status}; only a '
                "Failed or Stopped job can be resumed."
            )
        if self.store.get_model(record.model_name) is None:
            raise ConflictError(
                f'Cannot resume transform job "{record.arn}": its model '
                f'"{config.arn("model", record.model_name)}" was deleted.'
            )
        progress = {**record.progress, "resumes": record.progress.get("resumes", 0) + 1}
        resumed = transition(
            self.store,
            record.name,
            JobStatus.IN_PROGRESS,
            end_time=None,
            failure_reason=None,
            controller_pid=None,
            progress=progress,
        )
        current = self.store.get_job(record.name)
        if not resumed or current is None:
            raise ConflictError(
                f'Cannot resume transform job "{record.arn}": its status changed meanwhile.'
            )
        self._launch(current)
        return {"TransformJobArn": record.arn}

    def describe_transform_job(self, request: dict[str, Any]) -> dict[str, Any]:
        record = self._job(request["TransformJobName"])
        response: dict[str, Any] = {
            "TransformJobName": record.name,
            "TransformJobArn": record.arn,
            "TransformJobStatus": record.status,
            "ModelName": record.model_name,
            "CreationTime": _datetime(record.creation_time),
        }
        if record.failure_reason:
            response["FailureReason"] = record.failure_reason
        for member, value in (
            ("TransformStartTime", record.start_time),
            ("TransformEndTime", record.end_time),
        ):
            if value is not None:
                response[member] = _datetime(value)
        response.update(_echo(record.request, _ECHOED_JOB_MEMBERS))
        response["Progress"] = _progress(record)
        return response

    def list_transform_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        query = _query(request, _JOB_SORT_KEYS)
        records = self.store.list_jobs(_page_plus_one(query))
        summaries = [_job_summary(self._checked(r)) for r in records[: query.limit]]
        return _paged({"TransformJobSummaries": summaries}, query, len(records))

    def stop_transform_job(self, request: dict[str, Any]) -> dict[str, Any]:
        """Ask the job's controller to stop; it removes partial outputs and ends Stopped.

        Stopping a job that has already ended is a no-op, as stopping twice is.
        """
        record = self._job(request["TransformJobName"])
        if transition(self.store, record.name, JobStatus.STOPPING):
            self._checked(self._job(record.name))
        return {}

    def job_samples(self, name: str, since: float | None = None) -> list[SampleRecord]:
        """The job's telemetry samples after ``since`` (all when None), in time order:
        whole-job counts (instance ``""``) and each instance's CPU and memory."""
        self._job(name)  # an unknown job is NotFound, not an empty chart
        return list(self.store.list_samples(name, since))

    # Helpers

    def _launch(self, record: JobRecord) -> None:
        """Start the job's controller and record its process id; a job whose controller
        cannot start fails at once rather than hang."""
        try:
            pid = self.launcher(record)
        except OSError as exc:
            reason = f"InternalServerError: could not start the job's controller: {exc}"
            transition(self.store, record.name, JobStatus.FAILED, failure_reason=reason)
        else:
            if pid is not None:
                host = config.host_name()
                self.store.update_job(record.name, controller_pid=pid, controller_host=host)

    def _model(self, name: str) -> ModelRecord:
        record = self.store.get_model(name)
        if record is None:
            raise NotFoundError(f'Could not find model "{config.arn("model", name)}".')
        return record

    def _job(self, name: str) -> JobRecord:
        record = self.store.get_job(name)
        if record is None:
            arn = config.arn("transform-job", name)
            raise NotFoundError(f"Could not find transform job '{arn}'.")
        return self._checked(record)

    def check_controllers(self) -> list[str]:
        """End every running job whose controller process is gone; return their names.

        ``watch.ControllerWatch`` calls this in the background, so such a job ends within
        seconds even when no one reads it (reads check the jobs they return as well).
        """
        ended = []
        for status in (JobStatus.IN_PROGRESS, JobStatus.STOPPING):
            offset = 0
            while page := self.store.list_jobs(
                Query(status_equals=status.value, offset=offset, limit=_SCAN_PAGE)
            ):
                offset += len(page)
                ended += [r.name for r in page if JobStatus(self._checked(r).status).terminal]
        return ended

    def _job_ended(self, name: str) -> bool:
        """Whether a job's logs are complete: it has ended, or it is not (or no longer) known."""
        record = self.store.get_job(name)
        return record is None or JobStatus(self._checked(record).status).terminal

    def _checked(self, record: JobRecord) -> JobRecord:
        """End a job whose controller process is gone, so that it cannot hang forever.

        Only a controller on this host can be checked: servers on other machines sharing
        the database leave it to the servers of its own host.
        """
        if JobStatus(record.status).terminal or not record.controller_pid:
            return record
        if record.controller_host not in (None, config.host_name()):
            return record
        if _process_alive(record.controller_pid):
            return record
        if record.status == JobStatus.STOPPING.value:
            transition(self.store, record.name, JobStatus.STOPPED)
        else:
            reason = "InternalServerError: the job's controller process exited unexpectedly."
            transition(self.store, record.name, JobStatus.FAILED, failure_reason=reason)
        return self.store.get_job(record.name) or record


def _check_record_errors(request: Mapping[str, Any]) -> None:
    """A BATCHTRANSFORM_MAX_FAILED_RECORDS that is not a count or a percentage is refused
    at create time, not when the job ends."""
    try:
        limit_from(request.get("Environment"))
    except ValueError as exc:
        raise ValidationError(str(exc), f"Environment.{MAX_FAILED_RECORDS_VARIABLE}") from exc


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def _datetime(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)


def epoch_seconds(value: Any) -> float | None:
    """A time as the API takes or gives it (datetime, ISO 8601 text, epoch number)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value)


def _echo(request: Mapping[str, Any], members: tuple[str, ...]) -> dict[str, Any]:
    return {m: request[m] for m in members if request.get(m) is not None}


def _progress(record: JobRecord) -> dict[str, Any]:
    """The extra Describe member: how far the job is. boto3 ignores members it does not model."""
    return {
        "ObjectsTotal": record.progress.get("objects_total", 0),
        "ObjectsCompleted": record.progress.get("objects_completed", 0),
        "ObjectsFailed": record.progress.get("objects_failed", 0),
        "RecordsProcessed": record.progress.get("records", 0),
        "RecordsFailed": record.progress.get("failed_records", 0),
        "Resumes": record.progress.get("resumes", 0),
        "BytesRead": record.progress.get("bytes_in", 0),
        "BytesWritten": record.progress.get("bytes_out", 0),
        "FailedObjects": record.progress.get("failed_objects", []),
        "InstanceSeconds": record.progress.get("instance_seconds", {}),
        "Cost": pricing.job_cost(record),
        **_queued(record.progress),
    }


def _queued(progress: Mapping[str, Any]) -> dict[str, Any]:
    """``Queued`` while the job waits for its turn on this machine: its position (1 is
    next) and what it waits for; absent once its instances start."""
    place = progress.get("queued")
    if not place:
        return {}
    return {"Queued": {"Position": place["position"], "Reason": place["reason"]}}


def _job_summary(record: JobRecord) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "TransformJobName": record.name,
        "TransformJobArn": record.arn,
        "CreationTime": _datetime(record.creation_time),
        "LastModifiedTime": _datetime(record.last_modified_time),
        "TransformJobStatus": record.status,
    }
    if record.end_time is not None:
        summary["TransformEndTime"] = _datetime(record.end_time)
    if record.failure_reason:
        summary["FailureReason"] = record.failure_reason
    return summary


def _query(request: Mapping[str, Any], sort_keys: Mapping[str, str]) -> Query:
    return Query(
        name_contains=request.get("NameContains"),
        status_equals=request.get("StatusEquals"),
        created_after=epoch_seconds(request.get("CreationTimeAfter")),
        created_before=epoch_seconds(request.get("CreationTimeBefore")),
        modified_after=epoch_seconds(request.get("LastModifiedTimeAfter")),
        modified_before=epoch_seconds(request.get("LastModifiedTimeBefore")),
        sort_by=sort_keys[request.get("SortBy", "CreationTime")],
        descending=request.get("SortOrder", "Descending") == "Descending",
        offset=_decode_token(request.get("NextToken")),
        limit=request.get("MaxResults", 10),
    )


def _page_plus_one(query: Query) -> Query:
    """Ask for one more row than the page holds, to know whether a next page exists."""
    return Query(**{**vars(query), "limit": query.limit + 1})


def _paged(response: dict[str, Any], query: Query, fetched: int) -> dict[str, Any]:
    if fetched > query.limit:
        response["NextToken"] = _encode_token(query.offset + query.limit)
    return response


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValidationError("Invalid pagination token: NextToken.", "NextToken") from exc
    if not isinstance(offset, int) or offset < 0:
        raise ValidationError("Invalid pagination token: NextToken.", "NextToken")
    return offset


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def _launch_detached(record: JobRecord) -> int:
    from batchtransform.controller import launch_detached

    return launch_detached(record)
