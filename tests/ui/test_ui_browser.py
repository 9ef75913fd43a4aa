"""The dashboard in real headless Chromium (Debian's, driven by Playwright): sign-in, jobs
created through boto3 moving on the list, a job's live log, stopping a job from its page,
and what an unsigned or forged browser gets. Screenshots land in tests/ui/artifacts/."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from batchtransform.api.ui.sessions import COOKIE_NAME, Session
from batchtransform.store import SampleRecord


def test_sign_in_wrong_then_right(page: Any, dashboard: Any) -> None:
    page.goto(f"{dashboard.url}/ui/models")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.fill("input[name=access_key_id]", dashboard.access_key)
    page.fill("input[name=secret_access_key]", "not-the-secret")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("Sign-in failed: check both keys.")
    page.fill("input[name=access_key_id]", dashboard.access_key)
    page.fill("input[name=secret_access_key]", dashboard.secret_key)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Models")  # back where it was going
    assert page.url == f"{dashboard.url}/ui/models"
    page.click("text=Sign out")
    expect(page.locator("h1")).to_have_text("Sign in")


def test_an_unsigned_or_forged_browser_gets_the_sign_in_page(page: Any, dashboard: Any) -> None:
    page.goto(f"{dashboard.url}/ui/")
    expect(page.locator("h1")).to_have_text("Sign in")
    keeper = dashboard.server.dashboard.sessions
    expired = keeper.cookie_value(Session(dashboard.access_key, time.time() - 60, "t"))
    for value in ("eyJwIjoiQUtJRCJ9.forged", expired):
        page.context.clear_cookies()
        page.context.add_cookies([{"name": COOKIE_NAME, "value": value, "url": dashboard.url}])
        page.goto(f"{dashboard.url}/ui/jobs/job-1")
        expect(page.locator("h1")).to_have_text("Sign in")


def test_progress_moves_on_the_list(signed_in: Callable[[], Any], dashboard: Any) -> None:
    page = signed_in()
    expect(page.locator("h1")).to_have_text("Transform jobs")
    dashboard.start_job("moving", files=3, records=6)
    row = page.locator("tr[data-job=moving]")  # added by the list's own refresh
    expect(row.locator(".status")).to_have_text("InProgress", timeout=30_000)
    expect(row.locator(".objects span")).to_have_text("3/3", timeout=60_000)
    expect(row.locator(".status")).to_have_text("Completed", timeout=30_000)
    expect(row.locator(".records")).to_have_text("18")
    assert page.url.endswith("/ui/")  # the page never reloaded: it refreshed itself
    row.locator(".name a").click()
    expect(page.locator("#committed tr")).to_have_count(3)  # the store's commits
    expect(page.locator("#committed")).to_contain_text("part-2.csv.out")
    page.go_back()
    page.select_option("select[name=status]", "Failed")
    page.click("text=Filter")
    expect(page.locator("tr.empty")).to_contain_text("No jobs match these filters")
    expect(page.locator("#job-rows")).to_have_attribute("data-refreshed", re.compile(r"\d+"))
    expect(page.locator("tr.empty")).to_contain_text("No jobs match these filters")


def test_a_job_page_follows_the_log_and_stops_the_job(
    signed_in: Callable[[], Any], dashboard: Any
) -> None:
    dashboard.start_job("long", files=2, records=400)
    page = signed_in()
    page.goto(f"{dashboard.url}/ui/jobs/long")
    expect(page.locator("#job-status")).to_have_text("InProgress")
    logs = page.locator("#log-lines")
    expect(logs).to_contain_text("dashboard model loaded", timeout=60_000)
    expect(logs).to_contain_text("dashboard model got", timeout=30_000)
    expect(page.locator("#request-json")).to_contain_text('"TransformJobName": "long"')
    expect(page.locator("#in-flight")).to_contain_text("instance-1")  # from the job's progress
    page.click("#stop-job")
    expect(page.locator("#job-status")).to_have_text("Stopped", timeout=60_000)
    expect(page.locator("#stop-job")).to_have_count(0)
    assert dashboard.store.get_job("long").status == "Stopped"


def test_html_in_a_job_name_and_reason_renders_as_text(
    signed_in: Callable[[], Any], dashboard: Any
) -> None:
    name = "<img src=x id=injected-name>"
    reason = "ClientError: <b id=injected-reason>bold</b>"
    dashboard.add_record(name, "Failed", reason)
    page = signed_in()
    row = page.locator("tr", has_text="injected-name")
    expect(row.locator(".name")).to_have_text(name)
    expect(row.locator(".reason")).to_have_text(reason)
    # the list's own refresh draws the rows again, from the JSON view, with its script
    expect(page.locator("#job-rows")).to_have_attribute("data-refreshed", re.compile(r"\d+"))
    expect(row.locator(".reason")).to_have_text(reason)
    assert page.locator("#injected-name, #injected-reason").count() == 0
    row.locator(".name a").click()
    expect(page.locator("h1 .job-name")).to_have_text(name)
    expect(page.locator("#failure-reason")).to_have_text(reason)
    expect(page.locator("#throughput-chart")).to_contain_text("No samples yet.")  # its script ran
    expect(page.locator("#log-lines")).to_contain_text("No log streams yet")
    assert page.locator("#injected-name, #injected-reason").count() == 0


def test_charts_draw_the_job_samples(signed_in: Callable[[], Any], dashboard: Any) -> None:
    dashboard.add_record("sampled")
    t0 = time.time() - 10
    samples = [SampleRecord("sampled", t0 + 2 * n, "", {"records": 100.0 * n}) for n in range(5)]
    samples += [
        SampleRecord(
            "sampled",
            t0 + 2 * n,
            f"instance-{i}",
            {"cpu_percent": 50.0 * i, "memory_percent": 10.0, "memory_bytes": 64.0 * 2**20 * i},
        )
        for n in range(5)
        for i in (1, 2)
    ]
    dashboard.store.add_samples(samples)
    page = signed_in()
    page.goto(f"{dashboard.url}/ui/jobs/sampled")
    throughput = page.locator("#throughput-chart svg")
    expect(throughput.locator("polyline")).to_have_count(1)
    expect(throughput).to_contain_text("50.0 records/s")  # 100 records every 2 s
    figures = page.locator("#instance-charts figure")
    expect(figures.locator("figcaption")).to_have_text(
        ["instance-1 · 64 MiB", "instance-2 · 128 MiB"]
    )
    expect(figures.nth(1).locator("polyline")).to_have_count(2)  # CPU and memory
    expect(figures.nth(1)).to_contain_text("100.0 percent")
