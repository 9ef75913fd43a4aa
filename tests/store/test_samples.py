"""Telemetry samples in the store, on SQLite and on PostgreSQL: saved in batches, listed
per job in time order (``since`` excludes what a reader has), values back as stored;
``Service.job_samples`` answers the same and refuses an unknown job."""

from __future__ import annotations

import pytest
from documents import job_request, model_request

from batchtransform import NotFoundError
from batchtransform.service import Service
from batchtransform.store import SampleRecord, open_store

T0 = 1_700_000_000.25


def whole(job: str, at: float, records: int) -> SampleRecord:
    return SampleRecord(job, at, "", {"records": records, "bytes_in": 10.5 * records})


def instance(job: str, at: float, name: str, cpu: float) -> SampleRecord:
    values = {"cpu_percent": cpu, "memory_percent": 1.5, "memory_bytes": 2.0**40}
    return SampleRecord(job, at, name, values)


def test_samples_are_listed_per_job_in_time_order(database_url: str) -> None:
    store = open_store(database_url)
    later = [whole("j1", T0 + 4, 30), instance("j1", T0 + 2, "instance-2", 199.5)]
    store.add_samples(later)  # saved out of order, as two instances may report
    store.add_samples([whole("j1", T0, 0), instance("j1", T0 + 2, "instance-1", 50.0)])
    store.add_samples([whole("j2", T0 + 1, 7)])
    store.add_samples([])

    listed = store.list_samples("j1")
    assert [(s.time, s.instance) for s in listed] == [
        (T0, ""),
        (T0 + 2, "instance-2"),  # the same time: in the order they were saved
        (T0 + 2, "instance-1"),
        (T0 + 4, ""),
    ]
    assert listed[-1] == whole("j1", T0 + 4, 30)
    assert listed[1].values == {
        "cpu_percent": 199.5,
        "memory_percent": 1.5,
        "memory_bytes": 2.0**40,
    }
    assert store.list_samples("j1", since=T0 + 2) == [whole("j1", T0 + 4, 30)]
    assert store.list_samples("j2") == [whole("j2", T0 + 1, 7)]
    assert store.list_samples("nobody") == []


def test_the_service_lists_a_jobs_samples_and_refuses_an_unknown_job(database_url: str) -> None:
    service = Service(open_store(), launcher=lambda record: None)
    service.call("CreateModel", model_request())
    name = job_request()["TransformJobName"]
    service.call("CreateTransformJob", job_request())
    assert service.job_samples(name) == []
    service.store.add_samples([whole(name, T0, 1), whole(name, T0 + 2, 5)])
    assert service.job_samples(name) == [whole(name, T0, 1), whole(name, T0 + 2, 5)]
    assert service.job_samples(name, since=T0) == [whole(name, T0 + 2, 5)]
    assert (
        service.call("DescribeTransformJob", {"TransformJobName": name})["Progress"][
            "InstanceSeconds"
        ]
        == {}
    )
    with pytest.raises(NotFoundError, match="Could not find transform job"):
        service.job_samples("ghost")
