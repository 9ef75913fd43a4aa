"""The figures the dashboard works out itself: a job's rate and ETA from Describe, and
chart series from the store's samples (thinned for long jobs)."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import pytest

from batchtransform import pricing
from batchtransform.api.ui import views
from batchtransform.service import Service
from batchtransform.store import JobRecord, SampleRecord

T0 = 1_800_000_000.0


def description(status: str, done: int, total: int, records: int, **times: float) -> dict[str, Any]:
    document: dict[str, Any] = {
        "TransformJobName": "job-1",
        "TransformJobStatus": status,
        "CreationTime": dt.datetime.fromtimestamp(T0, dt.timezone.utc),
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
        "Progress": {"ObjectsTotal": total, "ObjectsCompleted": done, "RecordsProcessed": records},
    }
    for member, epoch in times.items():
        document[member] = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return document


@pytest.mark.parametrize(
    ("status", "done", "total", "records", "now", "rate", "eta"),
    [
        ("InProgress", 0, 4, 0, T0 + 10, 0.0, None),  # nothing done: no pace to go by
        ("InProgress", 1, 4, 50, T0 + 10, 5.0, 30.0),  # a quarter in 10 s: 30 s left
        ("InProgress", 4, 4, 200, T0 + 20, 10.0, None),  # all done, not ended yet
        ("Completed", 4, 4, 200, T0 + 999, 10.0, None),  # ended at T0 + 20: its own rate
    ],
)
def test_a_rows_rate_and_eta(
    status: str, done: int, total: int, records: int, now: float, rate: float, eta: float | None
) -> None:
    ended = {"TransformEndTime": T0 + 20} if status == "Completed" else {}
    row = views.job_row(
        description(status, done, total, records, TransformStartTime=T0, **ended), now=now
    )
    assert (row["records_per_second"], row["eta_seconds"]) == (rate, eta)
    assert row["percent"] == 100.0 * done / total
    assert row["can_stop"] == (status == "InProgress")


def test_a_queued_job_has_no_rate_and_shows_its_place() -> None:
    queued = description("InProgress", 0, 0, 0)
    queued["Progress"]["Queued"] = {"Position": 2, "Reason": "waiting for 2 CPUs"}
    row = views.job_row(queued, now=T0 + 5)
    assert (row["queue_position"], row["records_per_second"], row["eta_seconds"]) == (2, 0.0, None)


def test_chart_series_are_rates_and_thinned() -> None:
    service = Service(launcher=lambda record: None)
    service.store.add_job(
        JobRecord("job-1", "arn", "m1", "InProgress", T0, T0, {"TransformJobName": "job-1"})
    )
    count = 3 * views.MAX_CHART_POINTS
    service.store.add_samples(
        [SampleRecord("job-1", T0 + 2 * n, "", {"records": 10.0 * n}) for n in range(count)]
        + [
            SampleRecord("job-1", T0 + 2 * n, "instance-1", {"cpu_percent": n})
            for n in range(count)
        ]
    )
    series = views.samples(service, "job-1")
    throughput = series["throughput"]
    assert len(throughput) <= views.MAX_CHART_POINTS + 1
    assert {point["records_per_second"] for point in throughput} == {5.0}  # 10 records / 2 s
    assert throughput[-1]["time"] == T0 + 2 * (count - 1)
    cpu = series["instances"]["instance-1"]
    assert len(cpu) <= views.MAX_CHART_POINTS + 1
    assert (cpu[0]["cpu_percent"], cpu[-1]["cpu_percent"]) == (0, count - 1)


def test_the_job_page_shows_the_cost_beside_an_endpoints(
    dashboard: Any, http: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dashboard.add_record("priced")
    request = {
        "TransformJobName": "priced",
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
    }
    progress = {"instance_seconds": {"ml.m5.large": 90.0}}
    dashboard.store.update_job("priced", request=request, progress=progress)
    dashboard.sign_in(http)
    price = pricing.price_table()["ml.m5.large"].usd_per_hour
    page = html.unescape(http.get("/ui/jobs/priced").text)
    assert f"{90 / 3600 * price:.4f} USD for 90 instance-seconds of ml.m5.large" in page
    assert f"{2 * 24 * price:.2f} USD/day" in page
    assert f"({2 * 24 * 3600 / 90:,.0f} times this job a day)" in page

    broken = tmp_path / "prices.json"
    broken.write_text('{"prices": {"ml.m5.large": "cheap"}}')
    monkeypatch.setenv(pricing.SETTING, str(broken))
    page = html.unescape(http.get("/ui/jobs/priced").text)
    assert "90 instance-seconds of ml.m5.large (no price: price table" in page
    assert "prices.ml.m5.large: must be a positive number" in page
