"""The service's operations and rules, over a real store (no controller launched): every
test runs on SQLite and on PostgreSQL (the ``database_url`` fixture)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Callable

import pytest
from documents import job_request, model_request

from batchtransform import ConflictError, NotFoundError, ValidationError
from batchtransform.jobs import JobStatus, transition
from batchtransform.service import Service
from batchtransform.store import JobRecord, open_store


@pytest.fixture
def service(database_url: str) -> Service:
    launched: list[str] = []
    service = Service(open_store(), launcher=lambda record: launched.append(record.name))
    service.launched = launched  # type: ignore[attr-defined]
    return service


def test_model_lifecycle(service: Service) -> None:
    arn = service.call("CreateModel", model_request("Cancer-1"))["ModelArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:model/cancer-1"
    described = service.call("DescribeModel", {"ModelName": "Cancer-1"})
    assert described["ModelName"] == "Cancer-1"
    assert described["PrimaryContainer"] == {"Image": "batchtransform/python"}
    assert isinstance(described["CreationTime"], dt.datetime)
    listed = service.call("ListModels")["Models"]
    assert [m["ModelName"] for m in listed] == ["Cancer-1"]
    assert service.call("DeleteModel", {"ModelName": "Cancer-1"}) == {}
    with pytest.raises(
        NotFoundError, match=r'Could not find model "arn:aws:sagemaker:.*:model/cancer-1"'
    ):
        service.call("DescribeModel", {"ModelName": "Cancer-1"})


def test_duplicate_model_is_refused_as_sagemaker_words_it(service: Service) -> None:
    service.call("CreateModel", model_request())
    with pytest.raises(ConflictError, match="Cannot create already existing model") as caught:
        service.call("CreateModel", model_request())
    assert caught.value.code == "ValidationException"


def test_delete_unknown_model(service: Service) -> None:
    with pytest.raises(NotFoundError):
        service.call("DeleteModel", {"ModelName": "nope"})


def test_job_with_unknown_model_records_nothing(service: Service) -> None:
    with pytest.raises(NotFoundError, match="Could not find model") as caught:
        service.call("CreateTransformJob", job_request(model="ghost"))
    assert caught.value.code == "ValidationException"
    assert service.call("ListTransformJobs")["TransformJobSummaries"] == []
    assert service.launched == []  # type: ignore[attr-defined]


def test_create_and_describe_job(service: Service) -> None:
    service.call("CreateModel", model_request())
    request = job_request(MaxPayloadInMB=2, Environment={"A": "1"})
    arn = service.call("CreateTransformJob", request)["TransformJobArn"]
    assert arn.endswith(":transform-job/job-1")
    assert service.launched == ["job-1"]  # type: ignore[attr-defined]
    described = service.call("DescribeTransformJob", {"TransformJobName": "job-1"})
    assert described["TransformJobStatus"] == "InProgress"
    assert described["ModelName"] == "m1"
    assert described["MaxPayloadInMB"] == 2
    assert described["Environment"] == {"A": "1"}
    assert described["TransformInput"] == request["TransformInput"]
    assert described["Progress"]["ObjectsTotal"] == 0
    assert "TransformEndTime" not in described and "FailureReason" not in described


def test_duplicate_job_is_resource_in_use(service: Service) -> None:
    service.call("CreateModel", model_request())
    service.call("CreateTransformJob", job_request())
    with pytest.raises(ConflictError) as caught:
        service.call("CreateTransformJob", job_request())
    assert caught.value.code == "ResourceInUse"


def test_describe_unknown_job_is_a_validation_exception(service: Service) -> None:
    with pytest.raises(NotFoundError, match="Could not find transform job") as caught:
        service.call("DescribeTransformJob", {"TransformJobName": "nope"})
    assert caught.value.code == "ValidationException"


def test_unknown_operation(service: Service) -> None:
    with pytest.raises(ValidationError, match="Unknown operation 'CreateEndpoint'"):
        service.call("CreateEndpoint", {})


def make_jobs(service: Service, names: list[str]) -> None:
    service.call("CreateModel", model_request())
    for name in names:
        service.call("CreateTransformJob", job_request(name=name))


def test_list_jobs_filters_sorts_and_pages(service: Service) -> None:
    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    make_jobs(service, names)
    transition(service.store, "beta", JobStatus.FAILED, failure_reason="boom")

    newest_first = service.call("ListTransformJobs")["TransformJobSummaries"]
    assert [s["TransformJobName"] for s in newest_first] == names[::-1]
    by_name = service.call("ListTransformJobs", {"SortBy": "Name", "SortOrder": "Ascending"})
    assert [s["TransformJobName"] for s in by_name["TransformJobSummaries"]] == sorted(names)
    failed = service.call("ListTransformJobs", {"StatusEquals": "Failed"})["TransformJobSummaries"]
    assert [(s["TransformJobName"], s["FailureReason"]) for s in failed] == [("beta", "boom")]
    assert "TransformEndTime" in failed[0]
    containing = service.call("ListTransformJobs", {"NameContains": "lt"})["TransformJobSummaries"]
    assert [s["TransformJobName"] for s in containing] == ["delta"]

    seen, token = [], None
    while True:
        page = service.call(
            "ListTransformJobs", {"MaxResults": 2, **({"NextToken": token} if token else {})}
        )
        seen += [s["TransformJobName"] for s in page["TransformJobSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == names[::-1]


def listed(service: Service, **request: object) -> list[str]:
    summaries = service.call("ListTransformJobs", request)["TransformJobSummaries"]
    return [s["TransformJobName"] for s in summaries]


def test_list_jobs_by_creation_time(service: Service) -> None:
    make_jobs(service, ["one"])
    created = service.call("DescribeTransformJob", {"TransformJobName": "one"})["CreationTime"]
    before = created - dt.timedelta(seconds=1)
    after = created + dt.timedelta(seconds=1)
    assert listed(service, CreationTimeAfter=before) == ["one"]
    assert listed(service, CreationTimeAfter=after) == []
    assert listed(service, CreationTimeBefore=after.timestamp()) == ["one"]
    assert listed(service, LastModifiedTimeBefore=before.isoformat()) == []


def test_a_bad_next_token_is_refused(service: Service) -> None:
    with pytest.raises(ValidationError, match="NextToken"):
        service.call("ListTransformJobs", {"NextToken": "not-a-token"})


def test_stop_moves_to_stopping_and_is_idempotent(service: Service) -> None:
    make_jobs(service, ["job-1"])
    service.call("StopTransformJob", {"TransformJobName": "job-1"})
    assert service.store.get_job("job-1").status == "Stopping"  # type: ignore[union-attr]
    service.call("StopTransformJob", {"TransformJobName": "job-1"})
    assert service.store.get_job("job-1").status == "Stopping"  # type: ignore[union-attr]


def test_stopping_a_finished_job_changes_nothing(service: Service) -> None:
    make_jobs(service, ["job-1"])
    transition(service.store, "job-1", JobStatus.COMPLETED)
    service.call("StopTransformJob", {"TransformJobName": "job-1"})
    assert service.store.get_job("job-1").status == "Completed"  # type: ignore[union-attr]


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize(
    ("status", "expected"),
    [("InProgress", "Failed"), ("Stopping", "Stopped")],
)
def test_a_job_whose_controller_died_does_not_hang(
    service: Service, status: str, expected: str
) -> None:
    make_jobs(service, ["job-1"])
    service.store.update_job("job-1", status=status, controller_pid=dead_pid())
    described = service.call("DescribeTransformJob", {"TransformJobName": "job-1"})
    assert described["TransformJobStatus"] == expected
    if expected == "Failed":
        assert "controller process exited unexpectedly" in described["FailureReason"]


TRANSITIONS = [
    ("InProgress", "Completed", True),
    ("InProgress", "Failed", True),
    ("InProgress", "Stopping", True),
    ("InProgress", "Stopped", False),
    ("Stopping", "Stopped", True),
    ("Stopping", "Completed", False),
    ("Completed", "Failed", False),
    ("Failed", "Stopping", False),
    ("Stopped", "InProgress", True),  # resumed
    ("Failed", "InProgress", True),  # resumed
    ("Completed", "InProgress", False),
]


@pytest.mark.parametrize(("source", "target", "allowed"), TRANSITIONS)
def test_transition_table(service: Service, source: str, target: str, allowed: bool) -> None:
    make_jobs(service, ["job-1"])
    service.store.update_job("job-1", status=source)
    assert transition(service.store, "job-1", JobStatus(target)) is allowed
    record = service.store.get_job("job-1")
    assert record is not None
    assert record.status == (target if allowed else source)
    assert (record.end_time is not None) == (allowed and JobStatus(target).terminal)


def test_failure_reason_is_cut_to_the_api_limit(service: Service) -> None:
    make_jobs(service, ["job-1"])
    transition(service.store, "job-1", JobStatus.FAILED, failure_reason="x" * 5000)
    reason = service.call("DescribeTransformJob", {"TransformJobName": "job-1"})["FailureReason"]
    assert len(reason) == 1024 and reason.endswith("...")


def no_processes(record: JobRecord) -> None:
    raise OSError(11, "Resource temporarily unavailable")


def crashing(record: JobRecord) -> int:
    return dead_pid()  # as a controller whose imports fail, before it records itself


@pytest.mark.parametrize(
    ("launcher", "reason"),
    [
        (no_processes, "could not start the job's controller"),
        (crashing, "controller process exited unexpectedly"),
    ],
    ids=["cannot start", "dies before reporting in"],
)
def test_a_controller_that_fails_early_fails_the_job(
    launcher: Callable[[JobRecord], int | None], reason: str, database_url: str
) -> None:
    service = Service(open_store(), launcher=launcher)
    service.call("CreateModel", model_request())
    service.call("CreateTransformJob", job_request())
    described = service.call("DescribeTransformJob", {"TransformJobName": "job-1"})
    assert described["TransformJobStatus"] == "Failed"
    assert reason in described["FailureReason"]
