"""What the dashboard shows, read through ``Service``: plain dictionaries for the templates
and the JSON views alike, so a page and its refresh show the same figures.

Jobs and models are described with the ``Service`` methods themselves, not ``call``: a name
taken from the store or a URL is looked up as it is, and one the API would not accept is
simply not found, rather than a validation error about the request.

The list's records/s and ETA are averages since the job started (one Describe a job); the
job page's chart shows the rate between consecutive whole-job samples.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from batchtransform import pricing
from batchtransform.cloudwatch_logs import LOG_GROUP
from batchtransform.errors import ValidationError
from batchtransform.jobs import JobStatus, seconds_left
from batchtransform.service import Service, epoch_seconds
from batchtransform.store import JobRecord, Query

_Point = TypeVar("_Point")

__all__ = [
    "MAX_CHART_POINTS",
    "MAX_COMMITS_SHOWN",
    "MAX_LISTED",
    "job_detail",
    "job_row",
    "jobs_using_model",
    "list_jobs",
    "list_models",
    "log_events",
    "log_streams",
    "model_detail",
    "samples",
]

MAX_LISTED = 100  # jobs or models on one list page
MAX_COMMITS_SHOWN = 200  # the latest committed outputs on a job's page
MAX_CHART_POINTS = 400  # a longer series is thinned to about this many points
_MODEL_SCAN = 1000  # the newest jobs searched for a model's users
_LOG_PAGE = 500  # events sent per log read


def list_jobs(service: Service, status: str = "", name: str = "") -> list[dict[str, Any]]:
    """The newest jobs matching the filters, each as ``job_row`` describes it."""
    request: dict[str, Any] = {"MaxResults": MAX_LISTED}
    if status:
        request["StatusEquals"] = status
    if name:
        request["NameContains"] = name
    summaries = service.call("ListTransformJobs", request)["TransformJobSummaries"]
    rows = []
    for summary in summaries:
        name_ = summary["TransformJobName"]
        rows.append(job_row(service.describe_transform_job({"TransformJobName": name_})))
    return rows


def job_row(description: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """One job's line on the list: status, progress, rate, ETA, instances, times."""
    progress = description.get("Progress", {})
    status = description["TransformJobStatus"]
    start = epoch_seconds(description.get("TransformStartTime"))
    end = epoch_seconds(description.get("TransformEndTime"))
    total = progress.get("ObjectsTotal", 0)
    done = progress.get("ObjectsCompleted", 0) + progress.get("ObjectsFailed", 0)
    records = progress.get("RecordsProcessed", 0)
    elapsed = max(((end or now or time.time()) - start), 0.0) if start else 0.0
    queued = progress.get("Queued")
    return {
        "name": description["TransformJobName"],
        "status": status,
        "can_stop": status == JobStatus.IN_PROGRESS.value,
        "objects_total": total,
        "objects_done": done,
        "objects_failed": progress.get("ObjectsFailed", 0),
        "percent": round(100.0 * done / total, 1) if total else 0.0,
        "records": records,
        "records_failed": progress.get("RecordsFailed", 0),
        "records_per_second": round(records / elapsed, 1) if elapsed > 0 else 0.0,
        "eta_seconds": _eta(elapsed, done, total) if status == "InProgress" else None,
        "instances": description.get("TransformResources", {}).get("InstanceCount", 1),
        "instance_type": description.get("TransformResources", {}).get("InstanceType", ""),
        "queue_position": queued["Position"] if queued else None,
        "queue_reason": queued["Reason"] if queued else "",
        "created": _shown_time(epoch_seconds(description.get("CreationTime"))),
        "start": _shown_time(start),
        "end": _shown_time(end),
        "failure_reason": description.get("FailureReason", ""),
    }


def job_detail(service: Service, name: str) -> dict[str, Any]:
    """Everything the job page shows but the live parts (logs, charts), which its script
    reads from the JSON views. Raises the package's NotFoundError for an unknown job."""
    description = service.describe_transform_job({"TransformJobName": name})
    record = service.store.get_job(name)
    progress = record.progress if record else {}
    commits = sorted(service.store.list_commits(name), key=lambda c: c.committed_time)
    return {
        "row": job_row(description),
        "model_name": description["ModelName"],
        "request": record.request if record else {},
        "committed": [
            {
                "output": c.output_url,
                "records": c.counters.get("records", 0),
                "bytes_in": c.counters.get("bytes_in", 0),
                "bytes_out": c.counters.get("bytes_out", 0),
                "failed_records": c.counters.get("failed_records", 0),
                "time": _shown_time(c.committed_time),
            }
            for c in commits[-MAX_COMMITS_SHOWN:]
        ],
        "committed_total": len(commits),
        "in_flight": list(progress.get("in_flight", [])),
        "failures": _failures(progress),
        "cost": _cost(record) if record else {},
    }


def samples(service: Service, name: str, since: float | None = None) -> dict[str, Any]:
    """The job's samples as chart series: records/s over time for the whole job, CPU and
    memory per instance; raises NotFoundError for an unknown job."""
    rows = service.job_samples(name, since)
    whole = [(s.time, s.values) for s in rows if s.instance == ""]
    instances: dict[str, list[dict[str, float]]] = {}
    for sample in rows:
        if sample.instance:
            point = {"time": sample.time, **sample.values}
            instances.setdefault(sample.instance, []).append(point)
    return {
        "throughput": _thinned(_rates(_thinned(whole))),
        "instances": {name: _thinned(points) for name, points in instances.items()},
    }


def list_models(service: Service) -> list[dict[str, Any]]:
    models = service.call("ListModels", {"MaxResults": MAX_LISTED})["Models"]
    return [
        {"name": m["ModelName"], "created": _shown_time(epoch_seconds(m["CreationTime"]))}
        for m in models
    ]


def model_detail(service: Service, name: str) -> dict[str, Any]:
    """A model's containers (image, model data, environment) and the jobs that used it."""
    description = service.describe_model({"ModelName": name})
    primary = description.get("PrimaryContainer")
    containers = [primary] if primary else list(description.get("Containers", []))
    return {
        "name": description["ModelName"],
        "arn": description["ModelArn"],
        "created": _shown_time(epoch_seconds(description["CreationTime"])),
        "containers": [_container(c) for c in containers],
        "jobs": jobs_using_model(service, name),
    }


def jobs_using_model(service: Service, name: str) -> list[dict[str, str]]:
    """The newest jobs (of the last ``_MODEL_SCAN``) that ran the model of that name."""
    records: Sequence[JobRecord] = service.store.list_jobs(Query(limit=_MODEL_SCAN))
    return [
        {"name": r.name, "status": r.status, "created": _shown_time(r.creation_time)}
        for r in records
        if r.model_name == name
    ]


def log_streams(service: Service, name: str) -> list[str]:
    """The job's log streams (model logs and data-logs), by name."""
    service.describe_transform_job({"TransformJobName": name})
    request = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{name}/"}
    names: list[str] = []
    while True:
        page = service.call_logs("DescribeLogStreams", request)
        names += [s["logStreamName"] for s in page["logStreams"]]
        if not page.get("nextToken"):
            return names
        request["nextToken"] = page["nextToken"]


def log_events(service: Service, name: str, stream: str, token: str = "") -> dict[str, Any]:
    """A page of a stream: without a token, its latest events (the tail); with the forward
    token of the previous page, what was written since (follow)."""
    if not stream.startswith(f"{name}/"):
        raise ValidationError(f"Stream {stream!r} is not one of job {name!r}'s.", "stream")
    request: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream}
    request["limit"] = _LOG_PAGE
    if token:
        request["nextToken"] = token
    page = service.call_logs("GetLogEvents", request)
    events = [
        {"time": _shown_time(e["timestamp"] / 1000), "message": e["message"]}
        for e in page["events"]
    ]
    return {"events": events, "token": page["nextForwardToken"]}


def _container(container: Mapping[str, Any]) -> dict[str, Any]:
    source = container.get("ModelDataSource", {}).get("S3DataSource", {})
    return {
        "hostname": container.get("ContainerHostname", ""),
        "image": container.get("Image", ""),
        "model_data": container.get("ModelDataUrl") or source.get("S3Uri", ""),
        "environment": dict(container.get("Environment", {})),
    }


def _failures(progress: Mapping[str, Any]) -> list[dict[str, str]]:
    """Failed objects with their reasons; objects from before reasons were kept have none."""
    failures = [dict(f) for f in progress.get("failures", [])]
    named = {f.get("object") for f in failures}
    failures += [
        {"object": o, "reason": ""} for o in progress.get("failed_objects", []) if o not in named
    ]
    return failures


def _cost(record: JobRecord) -> dict[str, Any]:
    """The job's cost as Describe's ``Progress["Cost"]`` has it (instance-seconds only for
    a type the price table lacks)."""
    return pricing.job_cost(record)


def _rates(points: Sequence[tuple[float, Mapping[str, float]]]) -> list[dict[str, float]]:
    """Records per second between consecutive whole-job samples."""
    series = []
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t1 > t0:
            rate = (v1.get("records", 0.0) - v0.get("records", 0.0)) / (t1 - t0)
            series.append({"time": t1, "records_per_second": max(rate, 0.0)})
    return series


def _thinned(points: Sequence[_Point]) -> list[_Point]:
    """Every k-th point (and the last), so that a long job's chart stays light to send
    and draw; rates over the kept whole-job samples average the ones left out."""
    step = -(-len(points) // MAX_CHART_POINTS) or 1
    kept = list(points[::step])
    if points and kept[-1] is not points[-1]:
        kept.append(points[-1])
    return kept


def _eta(elapsed: float, done: int, total: int) -> float | None:
    left = seconds_left(elapsed, done, total)
    return None if left is None else round(left, 1)


def _shown_time(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
