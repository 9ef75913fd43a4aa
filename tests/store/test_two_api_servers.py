"""Two ``batchtransform server`` processes on different ports over one PostgreSQL database,
driven by 20 client threads of 50 calls each: every job created through either is seen
through both, exactly once; each name raced from both servers is won once (the others get
ResourceInUse); a stop sent to one server reaches the job the other launched."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from documents import job_request, model_request
from models import SLOW_HANDLER, tar_model, write_model
from pgserver import PostgresServer

from batchtransform.store import open_store

THREADS, CALLS = 20, 50
MODEL_WAVE, JOB_WAVES = 0, (10, 20, 30, 40)  # calls that every thread makes at the same time
NAMES_PER_WAVE = 5  # each job name is raced by THREADS // NAMES_PER_WAVE threads
MODELS = 10  # each model name is raced by THREADS // MODELS threads
KEY, SECRET = "AKIDTWOSERVERS", "two-servers-secret"
START_TIMEOUT, END_TIMEOUT = 60.0, 120.0


@dataclass
class Server:
    process: subprocess.Popen[str]
    endpoint_url: str
    reader: threading.Thread

    def stop(self) -> None:
        """Stop the server, and close its output once everything it said is read."""
        self.process.terminate()
        self.process.wait(timeout=30)
        self.reader.join(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def client(self, boto: boto3.session.Session) -> Any:
        return boto.client(
            "sagemaker",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            config=Config(retries={"max_attempts": 1}, read_timeout=60),
        )


def start_server(env: dict[str, str]) -> Server:
    process = subprocess.Popen(
        [sys.executable, "-m", "batchtransform.cli", "server", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # "Serving ... on http://127.0.0.1:PORT (...)"
    found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
    if not found:
        process.kill()
        raise AssertionError(f"the server did not start: {line}{process.communicate()[0]}")
    # keep draining its output, so that its log lines never block it
    reader = threading.Thread(target=process.stdout.read, daemon=True)
    reader.start()
    return Server(process, found.group(1), reader)


@dataclass
class TwoServers:
    first: Server
    second: Server
    database_url: str


@pytest.fixture
def two_servers(postgres: PostgresServer) -> Iterator[TwoServers]:
    """Two servers (and their jobs' controllers) on one new, empty database: both migrate
    it as they start, at the same time."""
    name = f"two_servers_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name)
    env = {
        **os.environ,
        "BATCHTRANSFORM_DATABASE_URL": url,
        "BATCHTRANSFORM_SERVER_ACCESS_KEY_ID": KEY,
        "BATCHTRANSFORM_SERVER_SECRET_ACCESS_KEY": SECRET,
    }
    servers: list[Server] = []
    try:
        starting = [threading.Thread(target=lambda: servers.append(start_server(env)))]
        starting.append(threading.Thread(target=lambda: servers.append(start_server(env))))
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join(START_TIMEOUT)
        assert len(servers) == 2, "a server did not start"
        yield TwoServers(servers[0], servers[1], url)
    finally:
        for server in servers:
            server.stop()
        postgres.drop_database(name)


@dataclass
class Tally:
    """What the clients saw: wins and refusals per name, and anything unexpected."""

    created: Counter[str] = field(default_factory=Counter)
    in_use: Counter[str] = field(default_factory=Counter)
    model_created: Counter[str] = field(default_factory=Counter)
    model_exists: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, counter: Counter[str], name: str) -> None:
        with self.lock:
            counter[name] += 1


def job_name(wave: int, thread: int) -> str:
    return f"race-{wave}-{thread % NAMES_PER_WAVE}"


def drive(clients: list[Any], thread: int, start: threading.Barrier, tally: Tally, inputs: str):
    """One client thread: CALLS calls, alternating between the servers."""
    done_waves: list[int] = []
    for call in range(CALLS):
        client = clients[(thread + call) % 2]
        if call == MODEL_WAVE or call in JOB_WAVES:
            start.wait(timeout=120)  # every earlier call of every thread has returned
        try:
            wave_call(client, call, thread, tally, inputs, done_waves)
        except Exception as exc:  # anything else is a failure, reported with its call
            tally.unexpected.append(f"thread {thread} call {call}: {exc!r}")
        with tally.lock:
            tally.calls += 1
        if call in JOB_WAVES:
            done_waves.append(call)


def wave_call(
    client: Any, call: int, thread: int, tally: Tally, inputs: str, done_waves: list[int]
) -> None:
    if call == MODEL_WAVE:
        name = f"model-{thread % MODELS}"
        try:
            client.create_model(**model_request(name))
            tally.count(tally.model_created, name)
        except ClientError as exc:
            assert "Cannot create already existing model" in str(exc), exc
            tally.count(tally.model_exists, name)
    elif call in JOB_WAVES:
        name = job_name(call, thread)
        request = job_request(name, f"model-{thread % MODELS}", inputs, inputs + "-out")
        try:
            client.create_transform_job(**request)
            tally.count(tally.created, name)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ResourceInUse", exc
            tally.count(tally.in_use, name)
    elif not done_waves:  # this thread's own call made sure that its model exists
        client.describe_model(ModelName=f"model-{thread % MODELS}")
    else:  # ... and that its job of each wave does
        other_calls(client, call, job_name(done_waves[call % len(done_waves)], thread))


def other_calls(client: Any, call: int, known_job: str) -> None:
    """Reads and stops of jobs that already exist (their wave is over)."""
    if call % 3 == 0:
        described = client.describe_transform_job(TransformJobName=known_job)
        assert described["TransformJobName"] == known_job
    elif call % 3 == 1:
        listed = client.list_transform_jobs(NameContains="race-", MaxResults=100)
        names = [s["TransformJobName"] for s in listed["TransformJobSummaries"]]
        assert known_job in names and len(names) == len(set(names)), names
    else:
        client.stop_transform_job(TransformJobName=known_job)  # often ended already: a no-op


def all_jobs(client: Any) -> list[str]:
    names, token = [], None
    while True:
        page = client.list_transform_jobs(MaxResults=7, **({"NextToken": token} if token else {}))
        names += [s["TransformJobName"] for s in page["TransformJobSummaries"]]
        token = page.get("NextToken")
        if not token:
            return names


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_two_servers_one_database(two_servers: TwoServers, tmp_path: Path) -> None:
    boto = boto3.session.Session()
    servers = (two_servers.first, two_servers.second)
    pairs = [[server.client(boto) for server in servers] for _ in range(THREADS)]
    (tmp_path / "empty").mkdir()  # the raced jobs' input: they fail at once, cheaply
    inputs = str(tmp_path / "empty")
    tally, start = Tally(), threading.Barrier(THREADS)
    threads = [
        threading.Thread(target=drive, args=(pairs[n], n, start, tally, inputs))
        for n in range(THREADS)
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - began
    print(f"\n{tally.calls} calls, {len(tally.unexpected)} unexpected errors, {seconds:.1f} s")

    assert tally.unexpected == []
    assert tally.calls == THREADS * CALLS
    names = {job_name(wave, n) for wave in JOB_WAVES for n in range(THREADS)}
    racers = THREADS // NAMES_PER_WAVE
    assert tally.created == dict.fromkeys(names, 1)
    assert tally.in_use == dict.fromkeys(names, racers - 1)
    model_names = {f"model-{n}" for n in range(MODELS)}
    assert tally.model_created == dict.fromkeys(model_names, 1)
    assert tally.model_exists == dict.fromkeys(model_names, THREADS // MODELS - 1)

    first, second = pairs[0]
    for client in (first, second):
        listed = all_jobs(client)
        assert sorted(listed) == sorted(names)  # each job once, through either server
    for client in (first, second):
        for name in sorted(names):
            wait_for(lambda c=client, n=name: ended(c, n), END_TIMEOUT)

    stop_reaches_the_other_servers_job(first, second, two_servers.database_url, tmp_path)


def ended(client: Any, name: str) -> bool:
    status = client.describe_transform_job(TransformJobName=name)["TransformJobStatus"]
    return status in ("Failed", "Stopped")


def stop_reaches_the_other_servers_job(
    launcher: Any, stopper: Any, database_url: str, tmp_path: Path
) -> None:
    """A slow job launched through one server, stopped through the other, mid-run.

    Progress is not in boto3's model of DescribeTransformJob, so it is read from the
    database, as a third process would."""
    store = open_store(database_url)
    model = tar_model(write_model(tmp_path / "slow", SLOW_HANDLER), tmp_path / "slow.tar.gz")
    launcher.create_model(**model_request("slow", model.as_uri()))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("".join(f"{n}\n" for n in range(100)))
    request = job_request(
        "slow-job", "slow", str(tmp_path / "in") + "/", str(tmp_path / "out"),
        BatchStrategy="SingleRecord",
    )  # fmt: skip
    launcher.create_transform_job(**request)

    def records() -> int:
        described = stopper.describe_transform_job(TransformJobName="slow-job")
        assert described["TransformJobStatus"] == "InProgress", described
        record = store.get_job("slow-job")
        return int(record.progress.get("records", 0)) if record else 0

    wait_for(lambda: records() > 0, END_TIMEOUT)
    stopper.stop_transform_job(TransformJobName="slow-job")

    def status() -> str:
        return str(
            launcher.describe_transform_job(TransformJobName="slow-job")["TransformJobStatus"]
        )

    wait_for(lambda: status() == "Stopped", END_TIMEOUT)
    assert not list((tmp_path / "out").glob("*")), "a stopped job leaves no output"
