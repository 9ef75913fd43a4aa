"""The dashboard under test: a real ``ApiServer`` on a free 127.0.0.1 port for each test
(its jobs' controllers are real processes over the test's own BATCHTRANSFORM_HOME), and,
for the browser tests, Debian's headless Chromium driven by Playwright, one per module.

Every browser test leaves a screenshot under ``tests/ui/artifacts/`` (``-failed`` when it
failed). A missing Chromium fails the browser tests, naming ``make browser``: they are part
of the suite, never skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from documents import job_request, model_request
from models import tar_model, write_model

from batchtransform.api import ApiServer, ServerConfig
from batchtransform.store import JobRecord, Query

ACCESS_KEY = "AKIDDASHBOARDTEST"
SECRET_KEY = "dashboard-test-secret"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"

# Prints a line the job page's log must show, then takes its time over each record, so
# that a job is still running while a test watches or stops it.
TALKING_SLOW_HANDLER = """
import time

def model_fn(model_dir):
    print("dashboard model loaded", flush=True)
    return "ok"

def transform_fn(model, body, content_type, accept):
    text = body.decode() if isinstance(body, bytes) else body
    print(f"dashboard model got {len(text)} characters", flush=True)
    time.sleep(0.15)
    return "".join(f"out:{line}\\n" for line in text.split("\\n") if line)
"""


@dataclass
class Dashboard:
    """A started server, its key, and helpers to make jobs the way a user does (boto3)."""

    server: ApiServer
    root: Path
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    clients: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.endpoint_url

    @property
    def store(self) -> Any:
        return self.server.service.store

    def sagemaker(self) -> Any:
        client = boto3.session.Session().client(
            "sagemaker",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(retries={"max_attempts": 1}),
        )
        self.clients.append(client)
        return client

    def start_job(
        self,
        name: str,
        files: int,
        records: int,
        handler: str = TALKING_SLOW_HANDLER,
        poisoned: int | None = None,
    ) -> None:
        """A job over ``files`` local CSV files of ``records`` lines, run one record at a
        time by ``handler`` (TALKING_SLOW_HANDLER: about 0.15 s a record); the file
        numbered ``poisoned`` holds the word "poison"."""
        client = self.sagemaker()
        model = f"model-{name}"
        folder = write_model(self.root / name / "model-src", handler)
        archive = tar_model(folder, self.root / name / "model.tar.gz").as_uri()
        client.create_model(**model_request(model, archive))
        inputs = self.root / name / "in"
        inputs.mkdir(parents=True)
        for n in range(files):
            word = "poison" if n == poisoned else str(n)
            (inputs / f"part-{n}.csv").write_text("".join(f"{word},{i}\n" for i in range(records)))
        request = job_request(
            name,
            model,
            input_uri=f"{inputs}/",
            output_path=str(self.root / name / "out"),
            BatchStrategy="SingleRecord",
        )
        client.create_transform_job(**request)

    def wait_for_status(self, name: str, *statuses: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while (record := self.store.get_job(name)) is None or record.status not in statuses:
            assert time.monotonic() < deadline, f"{name} is {record and record.status}"
            time.sleep(0.2)
        return str(record.status)

    def add_record(self, name: str, status: str = "InProgress", reason: str = "") -> None:
        """A job record written straight into the store, as a controller writes one: how
        a name the API would refuse (HTML in it) gets there."""
        now = time.time()
        record = JobRecord(
            name=name,
            arn=f"arn:aws:sagemaker:us-east-1:000000000000:transform-job/{name}",
            model_name="m1",
            status=status,
            creation_time=now,
            last_modified_time=now,
            request={"TransformJobName": name, "TransformResources": {"InstanceCount": 1}},
            failure_reason=reason or None,
        )
        assert self.store.add_job(record)

    def sign_in(self, client: httpx.Client) -> httpx.Response:
        form = {"access_key_id": self.access_key, "secret_access_key": self.secret_key}
        return client.post("/ui/login", data=form)


def _serve(config: ServerConfig, root: Path) -> Iterator[Dashboard]:
    with ApiServer(config) as server:
        dashboard = Dashboard(server, root)
        try:
            yield dashboard
        finally:
            for client in dashboard.clients:
                client.close()
            _stop_running_jobs(dashboard)


def _stop_running_jobs(dashboard: Dashboard) -> None:
    """Jobs a test left running are stopped, so no controller outlives its test's home
    (records a test wrote itself have no controller to wait for)."""
    for record in dashboard.store.list_jobs(Query(limit=1000)):
        if record.controller_pid and record.status in ("InProgress", "Stopping"):
            dashboard.server.service.call("StopTransformJob", {"TransformJobName": record.name})
            dashboard.wait_for_status(record.name, "Stopped", "Completed", "Failed")


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    """A server that requires ACCESS_KEY / SECRET_KEY, for its API and its dashboard."""
    yield from _serve(ServerConfig(port=0, credentials={ACCESS_KEY: SECRET_KEY}), tmp_path)


@pytest.fixture
def open_dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    """A server run with authentication off (``--no-auth``)."""
    yield from _serve(ServerConfig(port=0, no_auth=True), tmp_path)


@pytest.fixture
def http(dashboard: Dashboard) -> Iterator[httpx.Client]:
    """A plain HTTP client for ``dashboard`` that does not follow redirects."""
    with httpx.Client(base_url=dashboard.url, follow_redirects=False, timeout=30) as client:
        yield client


# --- the browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for the module's tests (starting one takes a second or two)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"The dashboard's browser tests need Chromium at {CHROMIUM}: run `make browser` "
            "(Debian's chromium package).",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keeps each phase's report on the test, so its page fixture knows it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; a screenshot when the test ends, and
    an error if a script on the page threw or an alert opened (injected markup ran)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("dialog", lambda dialog: errors.append(f"a dialog opened: {dialog.message}"))
    try:
        yield tab
        assert not errors, f"the page's script failed: {errors}"
    finally:
        report = getattr(request.node, "report_call", None)
        failed = report is not None and report.failed
        ARTIFACTS.mkdir(exist_ok=True)
        name = request.node.name + ("-failed" if failed else "")
        tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        context.close()


@pytest.fixture
def signed_in(page: Any, dashboard: Dashboard) -> Callable[[], Any]:
    """Signs ``page`` in with the one-time URL that ``batchtransform ui`` prints."""

    def sign_in() -> Any:
        token = dashboard.server.dashboard.sessions.issue_login_token()
        page.goto(f"{dashboard.url}/ui/login?token={token}")
        return page

    return sign_in
