"""Prometheus metrics at ``GET /metrics``, computed from the store at each scrape.

Nothing is counted in the server's memory: every figure is read from the jobs' records
(their ``progress``) and the running instances' telemetry samples when Prometheus asks,
so any number of servers sharing one database report the same figures, a restarted
server loses nothing, and a job's controller (a process of its own) needs no way to
push numbers here. The counters are sums over every job the store holds; they grow as
jobs run (a resume may correct one down, which Prometheus reads as a counter reset).

================================================  =======  ==================================
metric                                            type     from
================================================  =======  ==================================
``batchtransform_jobs{status}``                   gauge    each job's status
``batchtransform_jobs_queued``                    gauge    InProgress jobs waiting their turn
``batchtransform_instances_queued``               gauge    the instances those jobs asked for
``batchtransform_instances_running``              gauge    InProgress jobs' sampled instances
``batchtransform_objects_completed_total``        counter  ``progress["objects_completed"]``
``batchtransform_objects_failed_total``           counter  ``progress["objects_failed"]``
``batchtransform_records_processed_total``        counter  ``progress["records"]``
``batchtransform_records_failed_total``           counter  ``progress["failed_records"]``
``batchtransform_read_bytes_total``               counter  ``progress["bytes_in"]``
``batchtransform_written_bytes_total``            counter  ``progress["bytes_out"]``
``batchtransform_invocation_retries_total``       counter  ``progress["retries"]``
``batchtransform_runtime_restarts_total``         counter  ``progress["restarts"]``
``batchtransform_instance_seconds_total``         counter  ``progress["instance_seconds"]``
  ``{instance_type}``
``batchtransform_model_invocation_duration_``     histo-   ``progress["latency"]``
  ``seconds``                                     gram
``batchtransform_instance_cpu_ratio``             gauge    the instance's latest sample:
  ``{job,instance}``                                       ``cpu_percent`` / 100
``batchtransform_instance_memory_ratio``          gauge    ``memory_percent`` / 100
  ``{job,instance}``
``batchtransform_instance_memory_bytes``          gauge    ``memory_bytes``
  ``{job,instance}``
================================================  =======  ==================================

A running instance is one of an InProgress job whose latest sample is at most
``RECENT_SECONDS`` older than the job's newest sample: an instance that ended (or was
replaced) stops sampling while its job goes on. The CPU ratio is CloudWatch's
CPUUtilization over 100: 2.0 is two cores busy.

Access: with server credentials, a scrape must send one of them as HTTP Basic (user: the
access key id, password: its secret), which is what Prometheus' ``basic_auth`` sends, or
the metrics token as a bearer token (Prometheus' ``authorization``), set by
``--metrics-token`` or ``BATCHTRANSFORM_METRICS_TOKEN``. A server without credentials
(``--no-auth``) serves metrics to anyone, unless a metrics token is set. Anything else
is a 401 with ``WWW-Authenticate`` and no figures. Secrets are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from batchtransform.api.auth import matching_key
from batchtransform.api.protocol import Request, Response
from batchtransform.jobs import JobStatus
from batchtransform.service import Service
from batchtransform.store import JobRecord, Query, SampleRecord

__all__ = [
    "METRICS_TOKEN_VARIABLE",
    "RECENT_SECONDS",
    "MetricsAccess",
    "MetricsEndpoint",
    "StoreCollector",
    "metrics_token_from",
]

METRICS_TOKEN_VARIABLE = "BATCHTRANSFORM_METRICS_TOKEN"
PREFIX = "batchtransform_"
RECENT_SECONDS = 10.0  # an instance sampled every ~2 s has missed 5 samples by then
_LOOKBACK_SECONDS = 60.0  # samples read per running job: enough to find every live instance
_PAGE = 500  # jobs read at a time
_REALM = 'realm="batchtransform metrics"'
_le: Callable[[float], str] = floatToGoString  # a bucket bound as Prometheus writes it

# (progress key, metric name without the prefix and _total, help)
_COUNTERS = (
    ("objects_completed", "objects_completed", "Input objects whose output was written."),
    ("objects_failed", "objects_failed", "Input objects that failed."),
    ("records", "records_processed", "Records sent through the model."),
    ("failed_records", "records_failed", "Records that failed (record errors on)."),
    ("bytes_in", "read_bytes", "Input bytes read."),
    ("bytes_out", "written_bytes", "Output bytes written."),
    ("retries", "invocation_retries", "Model invocations retried."),
    ("restarts", "runtime_restarts", "Model servers (runtimes) started again."),
)
# (sample value, metric name without the prefix, help, scale)
_INSTANCE_GAUGES = (
    ("cpu_percent", "instance_cpu_ratio", "Cores busy (CPUUtilization / 100).", 0.01),
    ("memory_percent", "instance_memory_ratio", "Share of the memory limit used.", 0.01),
    ("memory_bytes", "instance_memory_bytes", "Resident memory, model servers included.", 1.0),
)


def metrics_token_from(option: str | None, environ: Mapping[str, str]) -> str | None:
    """The metrics token from ``--metrics-token``, else the environment; None if neither."""
    return option or environ.get(METRICS_TOKEN_VARIABLE) or None


class StoreCollector(Collector):
    """The metric families, computed from every job in the service's store at each scrape."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        jobs = list(_all_jobs(self.service))
        running = [j for j in jobs if j.status == JobStatus.IN_PROGRESS.value]
        queued = [j for j in running if j.progress.get("queued")]
        yield _jobs_by_status(jobs)
        yield _gauge("jobs_queued", "InProgress jobs waiting for their turn.", len(queued))
        wanted = sum(_instance_count(j) for j in queued)
        yield _gauge("instances_queued", "Instances the queued jobs asked for.", wanted)
        yield from _counters(jobs)
        yield _instance_seconds(jobs)
        yield _latency(jobs)
        yield from _instances(self._latest_instance_samples(running))

    def _latest_instance_samples(self, running: Sequence[JobRecord]) -> list[SampleRecord]:
        since = time.time() - _LOOKBACK_SECONDS
        latest: list[SampleRecord] = []
        for job in running:
            latest += _live_instances(self.service.job_samples(job.name, since))
        return latest


class MetricsAccess:
    """Who may scrape: a server access key and its secret over HTTP Basic, or the metrics
    token as a bearer token; anyone when there is neither."""

    def __init__(self, credentials: Mapping[str, str], token: str | None) -> None:
        self._credentials = dict(credentials)
        self._token = token.encode() if token else None

    @property
    def open(self) -> bool:
        return not self._credentials and self._token is None

    def allows(self, authorization: str | None) -> bool:
        """Whether the ``Authorization`` header value lets its sender read the metrics."""
        if self.open:
            return True
        scheme, _, value = (authorization or "").strip().partition(" ")
        if scheme.lower() == "basic" and self._credentials:
            return self._basic(value.strip())
        if scheme.lower() == "bearer" and self._token is not None:
            return hmac.compare_digest(value.strip().encode(), self._token)
        return False

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value: the schemes this server takes."""
        schemes = [f'Basic {_REALM}, charset="UTF-8"'] if self._credentials else []
        schemes += [f"Bearer {_REALM}"] if self._token is not None else []
        return ", ".join(schemes)

    def _basic(self, encoded: str) -> bool:
        try:
            user, _, password = base64.b64decode(encoded, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        return matching_key(self._credentials, user, password) is not None


class MetricsEndpoint:
    """The ``GET /metrics`` route: a Router handler over one service."""

    def __init__(self, service: Service, access: MetricsAccess) -> None:
        self.access = access
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StoreCollector(service))

    def __call__(self, request: Request, _: Mapping[str, str]) -> Response:
        if not self.access.allows(request.headers.get("Authorization")):
            return Response(
                401,
                b"401 Unauthorized: /metrics needs a server access key and secret (HTTP "
                b"Basic) or the metrics token (Bearer).\n",
                {
                    "Content-Type": "text/plain; charset=utf-8",
                    "WWW-Authenticate": self.access.challenge(),
                },
            )
        return Response(200, generate_latest(self.registry), {"Content-Type": CONTENT_TYPE_LATEST})


def _all_jobs(service: Service) -> Iterator[JobRecord]:
    """Every job, oldest first, a page at a time (a job created meanwhile comes last)."""
    offset = 0
    query = Query(sort_by="creation_time", descending=False, limit=_PAGE)
    while page := service.store.list_jobs(Query(**{**vars(query), "offset": offset})):
        yield from page
        offset += len(page)


def _jobs_by_status(jobs: Iterable[JobRecord]) -> Metric:
    counts = Counter(job.status for job in jobs)
    family = GaugeMetricFamily(PREFIX + "jobs", "Transform jobs by status.", labels=["status"])
    for status in JobStatus:  # every status, 0 included, so a query never finds a gap
        family.add_metric([status.value], counts[status.value])
    return family


def _counters(jobs: Sequence[JobRecord]) -> Iterator[Metric]:
    for key, name, help_text in _COUNTERS:
        total = sum(_number(job.progress.get(key)) for job in jobs)
        yield CounterMetricFamily(PREFIX + name, help_text, total)


def _instance_seconds(jobs: Iterable[JobRecord]) -> Metric:
    totals: dict[str, float] = defaultdict(float)
    for job in jobs:
        for kind, seconds in (job.progress.get("instance_seconds") or {}).items():
            totals[kind] += _number(seconds)
    family = CounterMetricFamily(
        PREFIX + "instance_seconds",
        "Instance lifetimes (launch to gone), summed by instance type.",
        labels=["instance_type"],
    )
    for kind, seconds in sorted(totals.items()):
        family.add_metric([kind], seconds)
    return family


def _latency(jobs: Iterable[JobRecord]) -> Metric:
    """The jobs' latency histograms added up, on the bucket bounds they all share: a
    cumulative count at a shared bound is exact for each job, so the sum is too."""
    name = PREFIX + "model_invocation_duration_seconds"
    help_text = "Model invocation latency."
    histograms = [h for job in jobs if (h := job.progress.get("latency")) and h.get("counts")]
    if not histograms:
        return HistogramMetricFamily(name, help_text)
    bounds = set.intersection(*(set(map(float, h["buckets"])) for h in histograms))
    cumulative = [0.0] * (len(bounds) + 1)
    for histogram in histograms:
        # counts has one more member than buckets: +Inf's, which is the count
        at = dict(zip(map(float, histogram["buckets"]), histogram["counts"][:-1], strict=True))
        for index, bound in enumerate(sorted(bounds)):
            cumulative[index] += at[bound]
        cumulative[-1] += histogram["count"]
    les = [_le(b) for b in sorted(bounds)] + ["+Inf"]
    total = sum(_number(h.get("sum")) for h in histograms)
    return HistogramMetricFamily(name, help_text, list(zip(les, cumulative, strict=True)), total)


def _live_instances(samples: Sequence[SampleRecord]) -> list[SampleRecord]:
    """Each instance's latest sample, for the instances still sampling (see the module)."""
    latest = {s.instance: s for s in samples if s.instance}  # time order: the last wins
    newest = max((s.time for s in samples), default=0.0)
    return [s for s in latest.values() if newest - s.time <= RECENT_SECONDS]


def _instances(latest: Sequence[SampleRecord]) -> Iterator[Metric]:
    yield _gauge("instances_running", "Instances of InProgress jobs, sampled.", len(latest))
    for value, name, help_text, scale in _INSTANCE_GAUGES:
        family = GaugeMetricFamily(PREFIX + name, help_text, labels=["job", "instance"])
        for sample in latest:
            if value in sample.values:
                family.add_metric([sample.job_name, sample.instance], sample.values[value] * scale)
        yield family


def _gauge(name: str, help_text: str, value: float) -> Metric:
    return GaugeMetricFamily(PREFIX + name, help_text, value)


def _instance_count(job: JobRecord) -> int:
    return int(job.request.get("TransformResources", {}).get("InstanceCount", 1))


def _number(value: Any) -> float:
    """A progress figure, or 0 where a job has none (an older job, one not started)."""
    return float(value) if isinstance(value, (int, float)) else 0.0
