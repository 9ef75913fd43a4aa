"""The ``Store`` contract, on SQLite and on PostgreSQL (``database_url``): records come back
as stored, names are unique, list queries filter, sort and page alike on both, and
conditional updates have one winner however many processes' connections race them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from batchtransform.jobs import JobStatus, transition
from batchtransform.store import JobRecord, ModelRecord, Query, Store, open_store

REQUEST: dict[str, Any] = {
    "TransformJobName": "j",
    "Environment": {"GREETING": "héllo ✓", "EMPTY": ""},
    "TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "s3://b/in/"}}},
    "MaxPayloadInMB": 6,
    "Nested": [1, 2.5, None, True, {"deep": ["x"]}],
}


def job(name: str, created: float = 1_700_000_000.123456, **fields: Any) -> JobRecord:
    return JobRecord(
        **{
            "name": name,
            "arn": f"arn:aws:sagemaker:us-east-1:000000000000:transform-job/{name.lower()}",
            "model_name": "m1",
            "status": "InProgress",
            "creation_time": created,
            "last_modified_time": created,
            "request": {**REQUEST, "TransformJobName": name},
            "model": {"ModelName": "m1", "PrimaryContainer": {"Image": "batchtransform/python"}},
            **fields,
        }
    )


def model(name: str, created: float = 1_700_000_000.5) -> ModelRecord:
    return ModelRecord(name, f"arn:aws:sagemaker:us-east-1:000000000000:model/{name}", created, {})


@pytest.fixture
def store(database_url: str) -> Store:
    return open_store(database_url)


def test_records_come_back_exactly_as_stored(store: Store) -> None:
    full = job(
        "job-1",
        start_time=1_700_000_001.25,
        end_time=1_700_000_009.75,
        failure_reason="ClientError: ünïcode reason",
        progress={"objects_total": 3, "failed_objects": [{"key": "a.csv", "reason": "x"}]},
        controller_pid=2**31 - 1,
    )
    assert store.add_job(full)
    assert store.add_job(job("job-2"))
    assert store.get_job("job-1") == full
    assert store.get_job("job-2") == job("job-2")  # None and {} defaults survive too
    assert store.get_job("job-3") is None
    assert store.add_model(model("m1"))
    assert store.get_model("m1") == model("m1")
    assert store.get_model("m2") is None


def test_names_are_unique_and_deletes_say_whether_they_deleted(store: Store) -> None:
    assert store.add_model(model("m1"))
    assert not store.add_model(model("m1", created=5.0))
    assert store.get_model("m1") == model("m1")  # the loser changed nothing
    assert store.add_job(job("job-1"))
    assert not store.add_job(job("job-1", created=5.0))
    assert store.get_job("job-1") == job("job-1")
    assert store.delete_model("m1")
    assert not store.delete_model("m1")
    assert store.add_model(model("m1"))  # a deleted name is free again


def test_conditional_update_writes_only_from_the_given_statuses(store: Store) -> None:
    store.add_job(job("job-1"))
    assert not store.update_job("job-1", {"Stopping"}, status="Stopped")
    assert store.get_job("job-1").status == "InProgress"  # type: ignore[union-attr]
    assert store.update_job("job-1", {"InProgress"}, status="Stopping", end_time=None)
    assert store.update_job("job-1", progress={"records": 7})
    record = store.get_job("job-1")
    assert record is not None and (record.status, record.progress) == ("Stopping", {"records": 7})
    assert not store.update_job("no-such-job", status="Failed")


NAMES = ["job-10", "Job-2", "job-2", "job1", "job_1", "job%1", "alpha", "Bravo", "zulu-é"]


def listed(store: Store, **query: Any) -> list[str]:
    return [r.name for r in store.list_jobs(Query(**{"limit": 100, **query}))]


@pytest.fixture
def many(store: Store) -> Store:
    """Jobs created a second apart in NAMES order; every third one Completed."""
    for n, name in enumerate(NAMES):
        status = "Completed" if n % 3 == 2 else "InProgress"
        created = 1000.0 + n
        store.add_job(job(name, created=created, status=status, last_modified_time=created + 50))
    return store


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # code-point order (upper case first), the same on PostgreSQL whatever its locale
        ({"sort_by": "name", "descending": False}, sorted(NAMES)),
        ({"sort_by": "name"}, sorted(NAMES, reverse=True)),
        ({}, list(reversed(NAMES))),  # newest first
        ({"sort_by": "creation_time", "descending": False, "offset": 2, "limit": 3}, NAMES[2:5]),
        # ties on the sort key are broken by name, ascending
        ({"sort_by": "status", "descending": False, "limit": 3}, ["job%1", "job-2", "zulu-é"]),
        ({"name_contains": "JOB-"}, ["job-2", "Job-2", "job-10"]),  # case-insensitive
        ({"name_contains": "%"}, ["job%1"]),  # LIKE's wildcards are plain characters
        ({"name_contains": "_"}, ["job_1"]),
        ({"name_contains": "é"}, ["zulu-é"]),
        ({"status_equals": "Completed"}, ["zulu-é", "job%1", "job-2"]),
        ({"created_after": 1003.0, "created_before": 1006.0}, ["job%1", "job_1"]),
        ({"modified_after": 1057.0}, ["zulu-é"]),
        ({"modified_before": 1051.0}, ["job-10"]),
    ],
)
def test_list_queries(many: Store, query: dict[str, Any], expected: list[str]) -> None:
    assert listed(many, **query) == expected


def test_model_lists_ignore_status_filters(store: Store) -> None:
    for n, name in enumerate(["b", "A", "c"]):
        store.add_model(model(name, created=10.0 + n))
    query = Query(status_equals="Completed", sort_by="name", descending=False)
    assert [m.name for m in store.list_models(query)] == ["A", "b", "c"]
    assert [m.name for m in store.list_models(Query(limit=2))] == ["c", "A"]


def race(contenders: int, attempt: Callable[[Store, int], bool], url: str) -> list[int]:
    """Run ``attempt`` from ``contenders`` threads at once, each with a store (a pool) of
    its own, as separate processes would; returns who won."""
    stores = [open_store(url) for _ in range(contenders)]
    start, winners = threading.Barrier(contenders), []

    def run(n: int) -> None:
        start.wait()
        if attempt(stores[n], n):
            winners.append(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return winners


def test_one_create_wins_a_name(store: Store, database_url: str) -> None:
    for round_ in range(5):
        name = f"job-{round_}"

        def create(s: Store, n: int, name: str = name) -> bool:
            return s.add_job(job(name, created=float(n)))

        winners = race(8, create, database_url)
        assert len(winners) == 1
        assert store.get_job(name) == job(name, created=float(winners[0]))


def test_one_status_change_wins_a_race(store: Store, database_url: str) -> None:
    """Stops and completions racing for the same job: exactly one lands (a job that is
    Stopping cannot complete, and one that has completed cannot stop)."""
    targets = [JobStatus.STOPPING, JobStatus.COMPLETED] * 5
    for round_ in range(5):
        name = f"job-{round_}"
        store.add_job(job(name))

        def move(s: Store, n: int, name: str = name) -> bool:
            return transition(s, name, targets[n], failure_reason=f"writer {n}")

        winners = race(len(targets), move, database_url)
        assert len(winners) == 1
        record = store.get_job(name)
        assert record is not None and record.status == targets[winners[0]].value
        assert record.failure_reason == f"writer {winners[0]}"
        assert record.last_modified_time <= time.time()
