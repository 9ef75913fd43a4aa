"""What the command line shows a person at a terminal: ``run``'s live progress bar and
final summary, and the tables of ``list-transform-jobs`` and ``list-models``.

Everything here reads the API's own answers (Describe, List), so an embedded session and
one on a remote server show the same thing. Rates are measured by the follower over the
last few seconds of its own polls: a job's throughput changes as it goes (start-up, a slow
object), and an average since the start would hide that.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from batchtransform.jobs import JobStatus, seconds_left

__all__ = [
    "RATE_WINDOW_SECONDS",
    "JobFollower",
    "RecordRate",
    "follow_with_progress",
    "jobs_table",
    "models_table",
    "print_table",
    "summary_line",
]

RATE_WINDOW_SECONDS = 5.0
_POLL_SECONDS = 0.5

Describe = Callable[[], dict[str, Any]]
DescribeByName = Callable[[str], dict[str, Any]]


class RecordRate:
    """Records per second over the last ``window`` seconds of observations."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self.window = window
        self._seen: deque[tuple[float, int]] = deque()

    def add(self, now: float, records: int) -> None:
        self._seen.append((now, records))
        # keep one observation at or before the window's start, so the span covers it
        while len(self._seen) > 2 and now - self._seen[1][0] >= self.window:
            self._seen.popleft()

    def per_second(self) -> float | None:
        """None until two observations are at least a poll apart."""
        (first_time, first), (last_time, last) = self._seen[0], self._seen[-1]
        span = last_time - first_time
        return (last - first) / span if span >= _POLL_SECONDS / 2 else None


class JobFollower:
    """The bar's fields from each Describe: the job's place in the queue while it waits,
    then objects, records, the record rate and the time left."""

    def __init__(self) -> None:
        self.rate = RecordRate()
        self.running_since: float | None = None

    def fields(self, description: dict[str, Any], now: float) -> dict[str, Any]:
        progress = description["Progress"]
        done = progress["ObjectsCompleted"] + progress["ObjectsFailed"]
        total = progress["ObjectsTotal"]
        queued = progress.get("Queued")
        if not queued and self.running_since is None:
            self.running_since = now
        self.rate.add(now, progress["RecordsProcessed"])
        return {
            "total": total or None,
            "completed": done,
            "objects": f"{done}/{total or '?'} objects",
            "records": f"{progress['RecordsProcessed']:,} records",
            "rate": _rate_text(self.rate.per_second()),
            "eta": self._eta_text(done, total, now),
            "status": f"queued: position {queued['Position']}" if queued else "",
        }

    def _eta_text(self, done: int, total: int, now: float) -> str:
        if self.running_since is None:
            return ""
        left = seconds_left(now - self.running_since, done, total)
        return "" if left is None else f"ETA {_duration_text(left)} (from objects)"


def follow_with_progress(describe: Describe, name: str) -> dict[str, Any]:
    """Poll the job until it ends, drawing a live bar; returns its last Describe."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[objects]} · {task.fields[records]} · {task.fields[rate]}"),
        TextColumn("{task.fields[eta]}{task.fields[status]}"),
    )
    follower = JobFollower()
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(name, total=None, objects="", records="", rate="", eta="", status="")
        while True:
            description = describe()
            bar.update(task, **follower.fields(description, time.monotonic()))
            if JobStatus(description["TransformJobStatus"]).terminal:
                return description
            time.sleep(_POLL_SECONDS)


def summary_line(description: dict[str, Any]) -> str:
    """One line for the end of ``run``: records, duration and what the job cost."""
    progress = description["Progress"]
    parts = [
        f"{description['TransformJobName']}: {description['TransformJobStatus']}",
        f"{progress['RecordsProcessed']:,} records",
    ]
    # from creation, not TransformStartTime (the first instance ready): the whole wait
    created, ended = description["CreationTime"], description.get("TransformEndTime")
    if ended:
        parts[-1] += f" in {_duration_text((ended - created).total_seconds())}"
    if "Cost" in progress:
        parts.append(cost_text(progress["Cost"]))
    return " · ".join(parts)


def cost_text(cost: dict[str, Any]) -> str:
    """The job's cost and the always-on endpoint beside it, or its instance-seconds only
    where its type has no price."""
    instances = f"{cost['InstanceCount']} x {cost['InstanceType']}"
    seconds = f"{cost['InstanceSeconds']:,.1f} instance-seconds"
    if "PriceError" in cost:
        return f"{instances}: {seconds} (no price: {cost['PriceError']})"
    if "JobUSD" not in cost:
        return f"{instances}: {seconds} (no price for {cost['InstanceType']})"
    endpoint = (
        f"an always-on endpoint: {_usd(cost['EndpointPerDayUSD'])}/day, "
        f"{_usd(cost['EndpointPerMonthUSD'])}/month"
    )
    if "EndpointDayToJobRatio" in cost:
        endpoint += f" ({cost['EndpointDayToJobRatio']:,.0f} times this job)"
    return f"{instances}: {seconds}, {_usd(cost['JobUSD'])}; {endpoint}"


def jobs_table(summaries: Sequence[dict[str, Any]], describe: DescribeByName) -> Table:
    """Name, status, created, progress and instances of each listed job; ``describe``
    fills in what a list summary does not carry."""
    table = Table("Name", "Status", "Created", "Progress", "Instances")
    for summary in summaries:
        job = describe(summary["TransformJobName"])
        progress, resources = job["Progress"], job["TransformResources"]
        done = progress["ObjectsCompleted"] + progress["ObjectsFailed"]
        _add_row(
            table,
            summary["TransformJobName"],
            _status_cell(summary["TransformJobStatus"], progress),
            _when(summary["CreationTime"]),
            f"{done}/{progress['ObjectsTotal']} objects, {progress['RecordsProcessed']:,} records",
            f"{resources['InstanceCount']} x {resources['InstanceType']}",
        )
    return table


def models_table(summaries: Sequence[dict[str, Any]], describe: DescribeByName) -> Table:
    """Name, image(s) and creation time of each listed model."""
    table = Table("Name", "Image", "Created")
    for summary in summaries:
        model = describe(summary["ModelName"])
        containers = model.get("Containers") or [model.get("PrimaryContainer", {})]
        images = ", ".join(c.get("Image", "") for c in containers)
        _add_row(table, summary["ModelName"], images, _when(summary["CreationTime"]))
    return table


def print_table(table: Table, next_token: str | None) -> None:
    console = Console()
    console.print(table)
    if next_token:
        console.print(f"More: --next-token {next_token}", markup=False, highlight=False)


def _add_row(table: Table, *cells: str) -> None:
    """Cells as plain text: a name or an image holding ``[...]`` is not markup."""
    table.add_row(*(Text(cell) for cell in cells))


def _status_cell(status: str, progress: dict[str, Any]) -> str:
    queued = progress.get("Queued")
    return f"{status} (queued: {queued['Position']})" if queued else status


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _rate_text(per_second: float | None) -> str:
    return "… records/s" if per_second is None else f"{per_second:,.1f} records/s"


def _duration_text(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f} s"
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _usd(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.6f}"
