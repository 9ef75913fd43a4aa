"""``GET /metrics``: real jobs through a real server, scraped over HTTP with httpx and read
by Prometheus' own parser (on SQLite and PostgreSQL); the figures checked against Describe's,
and who may scrape."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from documents import job_request, model_request
from models import ECHO_HANDLER, POISON_HANDLER, SLOW_HANDLER
from prometheus_client.parser import text_string_to_metric_families
from runtimes.model_server import write_launcher

from batchtransform.api import ApiServer, ServerConfig
from batchtransform.api.metrics import METRICS_TOKEN_VARIABLE, metrics_token_from
from batchtransform.config import database_url
from batchtransform.jobs import JobStatus
from batchtransform.service import Service
from batchtransform.store import JobRecord
from batchtransform.store.sql import SQLStore

TOKEN = "metrics-test-token"
Figures = dict[tuple[str, tuple[tuple[str, str], ...]], float]
SUMMED = {  # metric sample → Describe's Progress member it sums
    "batchtransform_objects_completed_total": "ObjectsCompleted",
    "batchtransform_objects_failed_total": "ObjectsFailed",
    "batchtransform_records_processed_total": "RecordsProcessed",
    "batchtransform_records_failed_total": "RecordsFailed",
    "batchtransform_read_bytes_total": "BytesRead",
    "batchtransform_written_bytes_total": "BytesWritten",
}


def scrape(url: str, **settings: Any) -> Figures:
    """Every sample of ``/metrics``, parsed by prometheus_client's parser, by name and labels."""
    response = httpx.get(f"{url}/metrics", **settings)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def figure(figures: Figures, name: str, **labels: str) -> float:
    return figures[(name, tuple(sorted(labels.items())))]


def samples_named(figures: Figures, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (sample, labels), value in figures.items() if sample == name}


def start_job(client: Any, root: Path, name: str, files: dict[str, str], **overrides: Any) -> None:
    (root / name / "in").mkdir(parents=True)
    for file, text in files.items():
        (root / name / "in" / file).write_text(text)
    request = job_request(
        name,
        model=overrides.pop("model", "echo"),
        input_uri=f"{root / name / 'in'}/",
        output_path=str(root / name / "out"),
        BatchStrategy="SingleRecord",
        ModelClientConfig={"InvocationsMaxRetries": 1},
        **overrides,
    )
    client.create_transform_job(**request)


def describe(service: Service, name: str) -> dict[str, Any]:
    return service.call("DescribeTransformJob", {"TransformJobName": name})


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


def wait_ended(service: Service, name: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        described = describe(service, name)
        terminal = JobStatus(described["TransformJobStatus"]).terminal
        return described if terminal else None

    described: dict[str, Any] = wait_for(ended, f"{name} to end")
    return described


@pytest.fixture
def models(client: Any, model_archive: Callable[[str], str]) -> None:
    """``echo`` (every record back) and ``poison`` (fails a record holding "poison")."""
    client.create_model(**model_request("echo", model_archive(ECHO_HANDLER)))
    client.create_model(**model_request("poison", model_archive(POISON_HANDLER)))


# --- figures -----------------------------------------------------------------------------


def test_figures_match_describe_after_a_completed_and_a_failed_job(
    database_url: str,  # first: the server opens the database it names
    api_server: Any,
    client: Any,
    models: None,
    tmp_path: Path,
) -> None:
    service = api_server.server.service
    start_job(client, tmp_path, "good", {"a.csv": "1\n2\n3\n", "b.csv": "4,5\n6,7\n"})
    start_job(client, tmp_path, "bad", {"c.csv": "8\npoison\n", "d.csv": "9\n"}, model="poison")
    described = [wait_ended(service, "good"), wait_ended(service, "bad")]
    assert [d["TransformJobStatus"] for d in described] == ["Completed", "Failed"], described

    figures = scrape(api_server.endpoint_url, auth=(api_server.access_key, api_server.secret_key))

    for status in JobStatus:
        expected = {"Completed": 1, "Failed": 1}.get(status.value, 0)
        assert figure(figures, "batchtransform_jobs", status=status.value) == expected
    for name, member in SUMMED.items():
        assert figure(figures, name) == sum(d["Progress"][member] for d in described), name
    assert figure(figures, "batchtransform_records_processed_total") >= 6, "the good job's 5 + 1"
    assert figure(figures, "batchtransform_objects_failed_total") == 1
    seconds = sum(d["Progress"]["InstanceSeconds"]["ml.m5.large"] for d in described)
    assert seconds > 0
    assert figure(
        figures, "batchtransform_instance_seconds_total", instance_type="ml.m5.large"
    ) == (pytest.approx(seconds))
    # One call per record (SingleRecord): the good job's 5, the bad job's 8 and 9, and
    # poison twice (sent, then retried once): every call is observed, answered or not.
    assert figure(figures, "batchtransform_model_invocation_duration_seconds_count") == 9
    assert figure(figures, "batchtransform_invocation_retries_total") == 1
    assert figure(figures, "batchtransform_runtime_restarts_total") == 0
    assert figure(figures, "batchtransform_jobs_queued") == 0
    assert figure(figures, "batchtransform_instances_running") == 0, "both jobs have ended"
    assert samples_named(figures, "batchtransform_instance_cpu_ratio") == {}


def test_a_model_server_restarted_mid_job_counts_as_a_restart(
    api_server: Any, client: Any, tmp_path: Path
) -> None:
    """A model server that exits at its 3rd call: started again, that call retried."""
    service = api_server.server.service
    environment = {"MODEL_SERVER_MODE": "crash-at", "MODEL_SERVER_CRASH_AT": "3"}
    container = {"Image": f"process://{write_launcher(tmp_path)}", "Environment": environment}
    client.create_model(ModelName="echo", PrimaryContainer=container)
    start_job(client, tmp_path, "crashing", {"a.csv": "1\n2\n3\n4\n"})
    described = wait_ended(service, "crashing")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")

    figures = scrape(api_server.endpoint_url, auth=(api_server.access_key, api_server.secret_key))
    assert figure(figures, "batchtransform_runtime_restarts_total") == 1
    assert figure(figures, "batchtransform_invocation_retries_total") == 1
    assert figure(figures, "batchtransform_model_invocation_duration_seconds_count") == 4 + 1


def test_a_job_waiting_for_its_turn_counts_as_queued(
    api_server: Any,
    client: Any,
    model_archive: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_MAX_INSTANCES", "1")  # the controllers inherit it
    service = api_server.server.service
    client.create_model(**model_request("echo", model_archive(SLOW_HANDLER)))
    start_job(client, tmp_path, "first", {"a.csv": "1\n" * 200})
    resources = {"InstanceType": "ml.m5.large", "InstanceCount": 3}
    start_job(client, tmp_path, "second", {"b.csv": "2\n"}, TransformResources=resources)
    try:
        wait_for(lambda: "Queued" in describe(service, "second")["Progress"], "a queued job")
        figures = scrape(
            api_server.endpoint_url, auth=(api_server.access_key, api_server.secret_key)
        )
        assert figure(figures, "batchtransform_jobs", status="InProgress") == 2
        assert figure(figures, "batchtransform_jobs_queued") == 1
        assert figure(figures, "batchtransform_instances_queued") == 3
    finally:
        for name in ("second", "first"):
            client.stop_transform_job(TransformJobName=name)
            wait_ended(service, name)


def test_a_running_instance_shows_its_latest_cpu_and_memory(
    api_server: Any, client: Any, model_archive: Callable[[str], str], tmp_path: Path
) -> None:
    service = api_server.server.service
    client.create_model(**model_request("echo", model_archive(SLOW_HANDLER)))
    start_job(client, tmp_path, "busy", {"a.csv": "1\n" * 300})
    try:
        wait_for(
            lambda: any(s.instance for s in service.job_samples("busy")), "an instance's sample"
        )
        figures = scrape(
            api_server.endpoint_url, auth=(api_server.access_key, api_server.secret_key)
        )
        sampled = [s for s in service.job_samples("busy") if s.instance == "instance-1"]
    finally:
        client.stop_transform_job(TransformJobName="busy")
        wait_ended(service, "busy")

    assert figure(figures, "batchtransform_instances_running") == 1
    labels = {"job": "busy", "instance": "instance-1"}
    scraped = (
        figure(figures, "batchtransform_instance_cpu_ratio", **labels) * 100,
        figure(figures, "batchtransform_instance_memory_ratio", **labels) * 100,
        figure(figures, "batchtransform_instance_memory_bytes", **labels),
    )
    # the scrape came between two reads of the samples: it saw one of those read after it
    taken = [
        (s.values["cpu_percent"], s.values["memory_percent"], s.values["memory_bytes"])
        for s in sampled
    ]
    assert any(scraped == pytest.approx(values) for values in taken), (scraped, taken)
    assert scraped[2] > 10 * 2**20, "the instance's Python holds more than 10 MiB"
    after = scrape(api_server.endpoint_url, auth=(api_server.access_key, api_server.secret_key))
    assert figure(after, "batchtransform_instances_running") == 0, "stopped: none runs"
    assert samples_named(after, "batchtransform_instance_memory_bytes") == {}


def test_latency_histograms_add_up_on_the_bounds_all_jobs_share() -> None:
    """Jobs that recorded their latency with different bounds: the shared bounds stay, each
    job's cumulative count there is exact, so the sums are too."""
    store = SQLStore(database_url())
    histograms = [
        {"buckets": [0.1, 0.5, 1.0], "counts": [2, 5, 6, 7], "sum": 3.0, "count": 7},
        {"buckets": [0.1, 1.0, 5.0], "counts": [1, 4, 4, 4], "sum": 1.5, "count": 4},
    ]
    for index, latency in enumerate(histograms):
        name = f"job-{index}"
        store.add_job(JobRecord(name, name, "m", "Completed", index, index, {}))
        store.update_job(name, progress={"latency": latency, "records": 10})
    try:
        with ApiServer(ServerConfig(port=0, no_auth=True), Service(store)) as server:
            figures = scrape(server.endpoint_url)
    finally:
        store.close()

    buckets = samples_named(figures, "batchtransform_model_invocation_duration_seconds_bucket")
    assert buckets == {(("le", "0.1"),): 3, (("le", "1.0"),): 10, (("le", "+Inf"),): 11}
    assert figure(figures, "batchtransform_model_invocation_duration_seconds_count") == 11
    assert figure(figures, "batchtransform_model_invocation_duration_seconds_sum") == 4.5
    assert figure(figures, "batchtransform_records_processed_total") == 20


# --- who may scrape ------------------------------------------------------------------------


def basic(key: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()}


@pytest.fixture
def guarded_server() -> Iterator[ApiServer]:
    """A server with one access key and a metrics token."""
    config = ServerConfig(port=0, credentials={"AKID": "s3cret"}, metrics_token=TOKEN)
    with ApiServer(config) as server:
        yield server


AUTH_CASES = [
    ("nothing", {}, 401),
    ("the right key and secret", basic("AKID", "s3cret"), 200),
    ("the wrong secret", basic("AKID", "wrong"), 401),
    ("an unknown key id", basic("AKIDOTHER", "s3cret"), 401),
    ("the secret as the key id", basic("s3cret", "AKID"), 401),
    ("no colon", {"Authorization": "Basic " + base64.b64encode(b"AKID").decode()}, 401),
    ("not base64", {"Authorization": "Basic !!!"}, 401),
    ("the token", {"Authorization": f"Bearer {TOKEN}"}, 200),
    ("the token, scheme in lower case", {"Authorization": f"bearer {TOKEN}"}, 200),
    ("a wrong token", {"Authorization": "Bearer not-the-token"}, 401),
    ("the secret as a token", {"Authorization": "Bearer s3cret"}, 401),
    ("the token as a Basic password", basic("AKID", TOKEN), 401),
    ("another scheme", {"Authorization": f"Token {TOKEN}"}, 401),
]


@pytest.mark.parametrize(
    ("case", "headers", "status"), AUTH_CASES, ids=[case[0] for case in AUTH_CASES]
)
def test_who_may_scrape_a_server_with_credentials(
    guarded_server: ApiServer, case: str, headers: dict[str, str], status: int
) -> None:
    response = httpx.get(f"{guarded_server.endpoint_url}/metrics", headers=headers)
    assert response.status_code == status, case
    if status == 401:
        assert "batchtransform_" not in response.text, "no figures without access"
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Basic realm="batchtransform metrics"')
        assert 'Bearer realm="batchtransform metrics"' in challenge
    else:
        assert "batchtransform_jobs{" in response.text


def test_a_bearer_token_is_refused_where_no_metrics_token_is_set(api_server: Any) -> None:
    url = f"{api_server.endpoint_url}/metrics"
    refused = httpx.get(url, headers={"Authorization": f"Bearer {api_server.secret_key}"})
    assert refused.status_code == 401
    assert (
        refused.headers["WWW-Authenticate"]
        == 'Basic realm="batchtransform metrics", charset="UTF-8"'
    )
    assert httpx.get(url, auth=(api_server.access_key, api_server.secret_key)).status_code == 200


def test_a_server_without_authentication_serves_metrics_to_anyone(open_server: Any) -> None:
    figures = scrape(open_server.endpoint_url)
    assert figure(figures, "batchtransform_jobs", status="Completed") == 0
    assert httpx.post(f"{open_server.endpoint_url}/metrics").status_code == 405


def test_a_metrics_token_guards_metrics_on_a_server_without_authentication() -> None:
    with ApiServer(ServerConfig(port=0, no_auth=True, metrics_token=TOKEN)) as server:
        url = f"{server.endpoint_url}/metrics"
        refused = httpx.get(url)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="batchtransform metrics"'
        assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


@pytest.mark.parametrize(
    ("option", "environ", "expected"),
    [
        ("from-option", {METRICS_TOKEN_VARIABLE: "from-env"}, "from-option"),
        (None, {METRICS_TOKEN_VARIABLE: "from-env"}, "from-env"),
        (None, {METRICS_TOKEN_VARIABLE: ""}, None),
        (None, {}, None),
    ],
)
def test_the_metrics_token_comes_from_the_option_else_the_environment(
    option: str | None, environ: dict[str, str], expected: str | None
) -> None:
    assert metrics_token_from(option, environ) == expected


def test_batchtransform_server_takes_the_metrics_token_from_its_environment() -> None:
    env = {**os.environ, METRICS_TOKEN_VARIABLE: TOKEN}
    program = str(Path(sys.executable).parent / "batchtransform")
    command = [program, "server", "--port", "0", "--no-auth"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            url = re.search(r"http://[\d.]+:\d+", server.stdout.readline())
            assert url, "the server prints its address"
            metrics = f"{url.group()}/metrics"
            assert httpx.get(metrics).status_code == 401
            authorized = httpx.get(metrics, headers={"Authorization": f"Bearer {TOKEN}"})
            assert authorized.status_code == 200
        finally:
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=30) == 130
