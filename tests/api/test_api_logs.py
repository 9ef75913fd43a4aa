"""boto3's own CloudWatch Logs client against ``batchtransform server``: every operation,
the tokens a follower relies on, pagination, errors, and the ``logs`` signing scope.

The streams are real log files written into the server's state folder as instances write
them (the model log with its ``.times`` notes, the data-log with its own times)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from clients import client_program

from batchtransform import Session
from batchtransform.errors import InvalidLogParameterError, LogResourceNotFoundError

GROUP = "/aws/sagemaker/TransformJobs"
STREAM = "job-a/instance-1-1700000000"
DATA_LOG = "job-a/instance-1-1700000000/data-log"
T0 = 1_700_000_001_000  # the model log's lines are at T0, T0 + 1 s, ...
LONG_AGO_NS = 1_600_000_000 * 10**9
GROUP_ARN = "arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/TransformJobs"


def write_model_log(folder: Path, base: str, lines: list[str], first_ms: int) -> None:
    """A model log whose n-th line was noted at ``first_ms`` + n seconds."""
    data, notes = b"", ""
    for n, line in enumerate(lines):
        data += f"{line}\n".encode()
        notes += f"{len(data)} {first_ms + 1000 * n}\n"
    (folder / f"{base}.log").write_bytes(data)
    (folder / f"{base}.times").write_text(notes)
    os.utime(folder / f"{base}.log", ns=(LONG_AGO_NS, LONG_AGO_NS))


@pytest.fixture
def job_logs(batchtransform_home: Path) -> Path:
    """Two jobs' streams in the server's state folder; neither job is known to its store,
    so their streams are complete."""
    folder = batchtransform_home / "jobs" / "job-a" / "logs"
    folder.mkdir(parents=True)
    write_model_log(folder, "instance-1-1700000000", [f"model line {n}" for n in range(5)], T0)
    (folder / "instance-1-1700000000.data-log").write_text(
        "2023-11-14T22:13:20.500Z:[sagemaker logs]: MaxConcurrentTransforms=1, "
        "MaxPayloadInMB=6, BatchStrategy=MULTI_RECORD\n"
        "2023-11-14T22:13:30.000Z:[sagemaker logs]: bucket/in/a.csv: ClientError: 413\n"
    )
    other = batchtransform_home / "jobs" / "job-b" / "logs"
    other.mkdir(parents=True)
    write_model_log(other, "instance-1-1700000100", ["other job"], T0 + 60_000)
    return folder


@pytest.fixture
def logs_client(api_server: Any) -> Iterator[Any]:
    client = api_server.boto.client(
        "logs",
        endpoint_url=api_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=api_server.access_key,
        aws_secret_access_key=api_server.secret_key,
        config=Config(retries={"max_attempts": 1}),
    )
    yield client
    client.close()


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def messages(response: dict[str, Any]) -> list[str]:
    return [event["message"] for event in response["events"]]


# DescribeLogGroups


def test_describe_log_groups(logs_client: Any, job_logs: Path) -> None:
    [group] = logs_client.describe_log_groups()["logGroups"]
    assert group["logGroupName"] == GROUP
    assert group["arn"] == f"{GROUP_ARN}:*"
    assert group["logGroupArn"] == GROUP_ARN
    assert logs_client.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/")["logGroups"]
    assert logs_client.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"] == []
    assert logs_client.describe_log_groups(logGroupNamePattern="transform")["logGroups"]


# DescribeLogStreams


def test_describe_log_streams_of_a_job(logs_client: Any, job_logs: Path) -> None:
    streams = logs_client.describe_log_streams(
        logGroupName=GROUP, logStreamNamePrefix="job-a/", orderBy="LogStreamName"
    )["logStreams"]
    assert [s["logStreamName"] for s in streams] == [STREAM, DATA_LOG]
    model = streams[0]
    assert model["creationTime"] == 1_700_000_000_000
    assert model["firstEventTimestamp"] == T0
    assert model["lastEventTimestamp"] == model["lastIngestionTime"] == T0 + 4000
    assert model["storedBytes"] == (job_logs / "instance-1-1700000000.log").stat().st_size
    assert model["arn"] == f"{GROUP_ARN}:log-stream:{STREAM}"
    assert streams[1]["firstEventTimestamp"] == 1_700_000_000_500


def test_describe_log_streams_orders_pages_and_filters(logs_client: Any, job_logs: Path) -> None:
    everything = logs_client.describe_log_streams(logGroupName=GROUP)["logStreams"]
    assert [s["logStreamName"] for s in everything] == [
        STREAM,
        DATA_LOG,
        "job-b/instance-1-1700000100",
    ]
    by_time = logs_client.describe_log_streams(
        logGroupName=GROUP, orderBy="LastEventTime", descending=True
    )["logStreams"]
    assert [s["logStreamName"] for s in by_time] == [
        "job-b/instance-1-1700000100",
        DATA_LOG,
        STREAM,
    ]
    first = logs_client.describe_log_streams(logGroupName=GROUP, limit=1, descending=True)
    assert [s["logStreamName"] for s in first["logStreams"]] == ["job-b/instance-1-1700000100"]
    assert "nextToken" in first
    paged = logs_client.get_paginator("describe_log_streams").paginate(
        logGroupName=GROUP, logStreamNamePrefix="job-", PaginationConfig={"PageSize": 1}
    )
    assert [s["logStreamName"] for page in paged for s in page["logStreams"]] == [
        STREAM,
        DATA_LOG,
        "job-b/instance-1-1700000100",
    ]
    assert (
        logs_client.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="job-z")[
            "logStreams"
        ]
        == []
    )


def test_describe_log_streams_refusals(logs_client: Any, job_logs: Path) -> None:
    with pytest.raises(ClientError) as caught:
        logs_client.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs")
    assert error_of(caught) == (
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
    with pytest.raises(ClientError) as caught:
        logs_client.describe_log_streams(
            logGroupName=GROUP, logStreamNamePrefix="job-a/", orderBy="LastEventTime"
        )
    assert error_of(caught) == (
        "InvalidParameterException",
        "Cannot order by LastEventTime with a logStreamNamePrefix.",
    )
    with pytest.raises(ClientError) as caught:
        logs_client.describe_log_streams(logGroupName=GROUP, orderBy="Size")
    assert error_of(caught)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as caught:
        logs_client.describe_log_streams(logGroupName=GROUP, limit=51)
    assert error_of(caught)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as caught:
        logs_client.describe_log_streams(logGroupName=GROUP, nextToken="not-a-token")
    assert error_of(caught) == ("InvalidParameterException", "The specified nextToken is invalid.")


# GetLogEvents


def test_get_log_events_from_the_head_with_tokens(logs_client: Any, job_logs: Path) -> None:
    first = logs_client.get_log_events(
        logGroupName=GROUP, logStreamName=STREAM, startFromHead=True, limit=2
    )
    assert first["events"] == [
        {"timestamp": T0, "message": "model line 0", "ingestionTime": T0},
        {"timestamp": T0 + 1000, "message": "model line 1", "ingestionTime": T0 + 1000},
    ]
    assert first["nextForwardToken"] == "f/" + "2".zfill(56) + "/s"
    assert first["nextBackwardToken"] == "b/" + "0".zfill(56) + "/s"
    rest = logs_client.get_log_events(
        logGroupName=GROUP, logStreamName=STREAM, nextToken=first["nextForwardToken"]
    )
    assert messages(rest) == ["model line 2", "model line 3", "model line 4"]
    at_end = logs_client.get_log_events(
        logGroupName=GROUP, logStreamName=STREAM, nextToken=rest["nextForwardToken"]
    )
    assert at_end["events"] == []
    assert at_end["nextForwardToken"] == rest["nextForwardToken"], "nothing new: same token"

    with (job_logs / "instance-1-1700000000.log").open("a") as log:
        log.write("model line 5\n")
    os.utime(job_logs / "instance-1-1700000000.log", ns=(LONG_AGO_NS, LONG_AGO_NS))
    grown = logs_client.get_log_events(
        logGroupName=GROUP, logStreamName=STREAM, nextToken=at_end["nextForwardToken"]
    )
    assert messages(grown) == ["model line 5"], "the same token finds what came since"


def test_get_log_events_backwards(logs_client: Any, job_logs: Path) -> None:
    latest = logs_client.get_log_events(logGroupName=GROUP, logStreamName=STREAM, limit=2)
    assert messages(latest) == ["model line 3", "model line 4"], "no token: the latest events"
    before = logs_client.get_log_events(
        logGroupName=GROUP, logStreamName=STREAM, limit=2, nextToken=latest["nextBackwardToken"]
    )
    assert messages(before) == ["model line 1", "model line 2"]
    start = logs_client.get_log_events(
        logGroupName=GROUP, logStreamName=STREAM, limit=2, nextToken=before["nextBackwardToken"]
    )
    assert messages(start) == ["model line 0"]
    past_start = logs_client.get_log_events(
        logGroupName=GROUP, logStreamName=STREAM, nextToken=start["nextBackwardToken"]
    )
    assert past_start["events"] == []
    assert past_start["nextBackwardToken"] == start["nextBackwardToken"]


def test_get_log_events_time_range(logs_client: Any, job_logs: Path) -> None:
    ranged = logs_client.get_log_events(
        logGroupName=GROUP,
        logStreamName=STREAM,
        startTime=T0 + 1000,
        endTime=T0 + 3000,
        startFromHead=True,
    )
    assert messages(ranged) == ["model line 1", "model line 2"], "start inclusive, end exclusive"
    data_log = logs_client.get_log_events(
        logGroupName=GROUP, logStreamName=DATA_LOG, startFromHead=True
    )
    assert [e["timestamp"] for e in data_log["events"]] == [1_700_000_000_500, 1_700_000_010_000]
    assert data_log["events"][1]["message"].endswith(
        ":[sagemaker logs]: bucket/in/a.csv: ClientError: 413"
    )


def test_get_log_events_refusals(logs_client: Any, job_logs: Path) -> None:
    for stream in ("job-a/instance-9-1700000000", "job-z/instance-1-1", "no-slash"):
        with pytest.raises(ClientError) as caught:
            logs_client.get_log_events(logGroupName=GROUP, logStreamName=stream)
        assert error_of(caught) == (
            "ResourceNotFoundException",
            "The specified log stream does not exist.",
        )
    with pytest.raises(ClientError) as caught:
        logs_client.get_log_events(logGroupName="/nope", logStreamName=STREAM)
    assert error_of(caught) == (
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
    for token in ("x/123", "f/abc", "f/" + "1" * 57):
        with pytest.raises(ClientError) as caught:
            logs_client.get_log_events(logGroupName=GROUP, logStreamName=STREAM, nextToken=token)
        assert error_of(caught) == (
            "InvalidParameterException",
            "The specified nextToken is invalid.",
        )
    with pytest.raises(ClientError) as caught:
        logs_client.get_log_events(logGroupName=GROUP, logStreamName=STREAM, limit=10001)
    assert error_of(caught)[0] == "InvalidParameterException"


def test_a_log_group_arn_names_the_group(logs_client: Any, job_logs: Path) -> None:
    events = logs_client.get_log_events(
        logGroupIdentifier=GROUP_ARN, logStreamName=STREAM, startFromHead=True
    )
    assert len(events["events"]) == 5


# FilterLogEvents

FILTER_CASES = [
    ("no pattern: everything, in time order", {}, ["[sagemaker logs]: MaxConcurrentTransforms", "model line 0", "model line 1", "model line 2", "model line 3", "model line 4", "[sagemaker logs]: bucket/in/a.csv", "other job"]),
    ("a plain term", {"filterPattern": "ClientError"}, ["bucket/in/a.csv: ClientError: 413"]),
    ("all terms must occur", {"filterPattern": "model 3"}, ["model line 3"]),
    ("a quoted phrase", {"filterPattern": '"line 4"'}, ["model line 4"]),
    ("terms are case-sensitive", {"filterPattern": "MODEL"}, []),
    ("an excluded term", {"filterPattern": "line -model"}, []),
    ("optional terms are alternatives", {"filterPattern": "?other ?413"}, ["ClientError: 413", "other job"]),
    ("one job's streams by prefix", {"logStreamNamePrefix": "job-b/"}, ["other job"]),
    ("named streams", {"logStreamNames": [DATA_LOG], "filterPattern": "sagemaker"}, ["MaxConcurrentTransforms", "ClientError"]),
    ("a time range", {"startTime": T0 + 3000, "endTime": T0 + 60_001}, ["model line 3", "model line 4", "ClientError: 413", "other job"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "expected"), [c[1:] for c in FILTER_CASES], ids=[c[0] for c in FILTER_CASES]
)
def test_filter_log_events(
    logs_client: Any, job_logs: Path, request_: dict[str, Any], expected: list[str]
) -> None:
    found = logs_client.filter_log_events(logGroupName=GROUP, **request_)
    assert len(found["events"]) == len(expected)
    for event, part in zip(found["events"], expected, strict=True):
        assert part in event["message"]


def test_filter_log_events_pages_and_ids(logs_client: Any, job_logs: Path) -> None:
    pages = list(
        logs_client.get_paginator("filter_log_events").paginate(
            logGroupName=GROUP, filterPattern="model", PaginationConfig={"PageSize": 2}
        )
    )
    events = [event for page in pages for event in page["events"]]
    assert [e["message"] for e in events] == [f"model line {n}" for n in range(5)]
    assert len(pages) == 3
    assert {e["logStreamName"] for e in events} == {STREAM}
    ids = [e["eventId"] for e in events]
    assert len(set(ids)) == 5 and all(len(i) == 56 and i.isdigit() for i in ids)
    assert pages[0]["searchedLogStreams"][0] == {
        "logStreamName": STREAM,
        "searchedCompletely": True,
    }


def test_filter_log_events_refusals(logs_client: Any, job_logs: Path) -> None:
    with pytest.raises(ClientError) as caught:
        logs_client.filter_log_events(
            logGroupName=GROUP, logStreamNames=[STREAM], logStreamNamePrefix="job-a/"
        )
    assert error_of(caught)[0] == "InvalidParameterException"
    for pattern in ('{ $.level = "ERROR" }', "[ip, user]", '"unclosed'):
        with pytest.raises(ClientError) as caught:
            logs_client.filter_log_events(logGroupName=GROUP, filterPattern=pattern)
        assert error_of(caught)[0] == "InvalidParameterException", pattern
    with pytest.raises(ClientError) as caught:
        logs_client.filter_log_events(logGroupName=GROUP, logStreamNames=["job-a/instance-7-1"])
    assert error_of(caught)[0] == "ResourceNotFoundException"


def test_operations_the_server_does_not_serve(logs_client: Any, job_logs: Path) -> None:
    with pytest.raises(ClientError) as caught:
        logs_client.create_log_group(logGroupName="/mine")
    code, message = error_of(caught)
    assert code == "UnknownOperationException"
    assert "CreateLogGroup is not supported" in message and "GetLogEvents" in message


# Signatures: the same credentials, each API's own signing name


def signed_post(server: Any, target: str, service: str, body: bytes = b"{}") -> httpx.Response:
    """A request signed by botocore's signer for ``service``, sent with httpx."""
    url = f"{server.endpoint_url}/"
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
    )
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    SigV4Auth(Credentials(server.access_key, server.secret_key), service, "us-east-1").add_auth(
        request
    )
    return httpx.post(url, content=body, headers=dict(request.headers.items()))


SCOPE_CASES = [
    ("Logs signed for logs", "Logs_20140328.DescribeLogGroups", "logs", 200, None),
    ("Logs signed for sagemaker", "Logs_20140328.DescribeLogGroups", "sagemaker", 400, "Credential should be scoped to correct service: 'logs'."),
    ("SageMaker signed for sagemaker", "SageMaker.ListModels", "sagemaker", 200, None),
    ("SageMaker signed for logs", "SageMaker.ListModels", "logs", 400, "Credential should be scoped to correct service: 'sagemaker'."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("target", "service", "status", "message"),
    [c[1:] for c in SCOPE_CASES],
    ids=[c[0] for c in SCOPE_CASES],
)
def test_each_api_takes_its_own_signing_name(
    api_server: Any, target: str, service: str, status: int, message: str | None
) -> None:
    response = signed_post(api_server, target, service)
    assert response.status_code == status, response.text
    if message is not None:
        assert response.json() == {"__type": "InvalidSignatureException", "message": message}


def test_an_unsigned_logs_request_is_refused(api_server: Any) -> None:
    response = httpx.post(
        f"{api_server.endpoint_url}/",
        content=b"{}",
        headers={
            "X-Amz-Target": "Logs_20140328.DescribeLogGroups",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    assert response.status_code == 403
    assert response.json()["__type"] == "MissingAuthenticationTokenException"


# The AWS CLI


def test_the_aws_cli_reads_the_logs(api_server: Any, job_logs: Path, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": api_server.access_key,
        "AWS_SECRET_ACCESS_KEY": api_server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    def aws(*args: str) -> Any:
        command = [client_program("aws"), "logs", *args, "--endpoint-url", api_server.endpoint_url]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    events = aws(
        "get-log-events",
        "--log-group-name",
        GROUP,
        "--log-stream-name",
        STREAM,
        "--start-from-head",
    )
    assert messages(events) == [f"model line {n}" for n in range(5)]
    assert events["nextForwardToken"] == "f/" + "5".zfill(56) + "/s"
    streams = aws(
        "describe-log-streams", "--log-group-name", GROUP, "--log-stream-name-prefix", "job-a/"
    )
    assert [s["logStreamName"] for s in streams["logStreams"]] == [STREAM, DATA_LOG]
    found = aws("filter-log-events", "--log-group-name", GROUP, "--filter-pattern", "ClientError")
    assert [e["logStreamName"] for e in found["events"]] == [DATA_LOG]

    command = [client_program("aws"), "logs", "get-log-events", "--log-group-name", GROUP]
    command += ["--log-stream-name", "job-a/nothing", "--endpoint-url", api_server.endpoint_url]
    missing = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 255, "AWS CLI v1 exits 255 on a service error"
    assert (
        "An error occurred (ResourceNotFoundException) when calling the GetLogEvents "
        "operation: The specified log stream does not exist." in missing.stderr
    )


# Our own clients: the same operations, the same exceptions, embedded or remote

LOGS_ERROR_CASES = [
    ("GetLogEvents", {"logGroupName": GROUP, "logStreamName": "job-a/instance-9-1"}, LogResourceNotFoundError, "ResourceNotFoundException"),
    ("DescribeLogStreams", {"logGroupName": "/nope"}, LogResourceNotFoundError, "ResourceNotFoundException"),
    ("GetLogEvents", {"logGroupName": GROUP, "logStreamName": STREAM, "nextToken": "zz"}, InvalidLogParameterError, "InvalidParameterException"),
]  # fmt: skip


@pytest.mark.parametrize("remote", [False, True], ids=["embedded", "remote"])
def test_sessions_read_logs_alike(
    api_server: Any, aws_env: None, job_logs: Path, remote: bool
) -> None:
    session = Session(endpoint_url=api_server.endpoint_url) if remote else Session()
    events = session.call_logs(
        "GetLogEvents", {"logGroupName": GROUP, "logStreamName": STREAM, "startFromHead": True}
    )
    assert messages(events) == [f"model line {n}" for n in range(5)]
    for operation, request, kind, code in LOGS_ERROR_CASES:
        with pytest.raises(kind) as caught:
            session.call_logs(operation, request)
        assert caught.value.code == code
