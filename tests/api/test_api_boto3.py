"""boto3's own SageMaker client against ``batchtransform server``: every operation, every
error, the paginators and the waiter, jobs on SeaweedFS; then the CLI and the SDK remote."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError, WaiterError
from documents import job_request, model_request
from models import ECHO_HANDLER, SLOW_HANDLER, echoed

from batchtransform import ConflictError, NotBuiltError, NotFoundError, Session, Transformer, cli
from batchtransform import ValidationError as BTValidationError
from batchtransform.remote import RemoteService

WAIT = {"Delay": 1, "MaxAttempts": 120}
ARN_PREFIX = "arn:aws:sagemaker:us-east-1:000000000000"
JSON_11 = "application/x-amz-json-1.1"


def local_job(root: Path, name: str = "job-1", **overrides: Any) -> dict[str, Any]:
    """A job over local folders under ``root`` (``in/`` need not exist: the job then fails)."""
    return job_request(
        name, input_uri=str(root / "in") + "/", output_path=str(root / "out"), **overrides
    )


def write_inputs(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / "in").mkdir(parents=True, exist_ok=True)
        (root / "in" / name).write_text(text)


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def wait_until_started(client: Any, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while "TransformStartTime" not in client.describe_transform_job(TransformJobName=name):
        assert time.monotonic() < deadline, f"{name} did not start in time"
        time.sleep(0.1)


# --- operations ----------------------------------------------------------------------


def test_model_operations_round_trip(client: Any) -> None:
    created = client.create_model(**model_request("Cancer-1"))
    assert created["ModelArn"] == f"{ARN_PREFIX}:model/cancer-1"
    assert created["ResponseMetadata"]["RequestId"]

    described = client.describe_model(ModelName="Cancer-1")
    assert described["ModelName"] == "Cancer-1"
    assert described["PrimaryContainer"] == {"Image": "batchtransform/python"}
    assert isinstance(described["CreationTime"], dt.datetime)
    assert abs(described["CreationTime"].timestamp() - time.time()) < 60

    listed = client.list_models()
    assert [m["ModelName"] for m in listed["Models"]] == ["Cancer-1"]
    assert "NextToken" not in listed

    client.delete_model(ModelName="Cancer-1")
    assert client.list_models()["Models"] == []


def test_job_operations_round_trip(
    client: Any, tmp_path: Path, model_archive: Callable[[str], str]
) -> None:
    write_inputs(tmp_path, {"a.csv": "1,2\n3,4\n"})
    client.create_model(**model_request("m1", model_archive(ECHO_HANDLER)))
    created = client.create_transform_job(**local_job(tmp_path))
    assert created["TransformJobArn"] == f"{ARN_PREFIX}:transform-job/job-1"

    client.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="job-1", WaiterConfig=WAIT
    )
    described = client.describe_transform_job(TransformJobName="job-1")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert described["ModelName"] == "m1"
    assert described["TransformInput"]["SplitType"] == "Line"
    assert described["CreationTime"] <= described["TransformStartTime"]
    assert described["TransformStartTime"] <= described["TransformEndTime"]
    assert "Progress" not in described, "botocore drops members its model lacks"

    [summary] = client.list_transform_jobs(StatusEquals="Completed")["TransformJobSummaries"]
    assert summary["TransformJobName"] == "job-1"
    assert summary["TransformJobArn"] == created["TransformJobArn"]
    assert isinstance(summary["LastModifiedTime"], dt.datetime)
    assert client.list_transform_jobs(StatusEquals="Failed")["TransformJobSummaries"] == []
    assert (tmp_path / "out" / "a.csv.out").read_bytes() == echoed("1,2\n3,4\n")


def test_list_filters_travel_as_epoch_seconds(client: Any) -> None:
    client.create_model(**model_request("m1"))
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    assert len(client.list_models(CreationTimeAfter=past)["Models"]) == 1
    assert client.list_models(CreationTimeBefore=past)["Models"] == []


# --- errors ----------------------------------------------------------------------------

Call = Callable[[Any, Path], Any]

ERROR_CASES: list[tuple[str, list[Call], Call, str, str]] = [
    ("job with unknown model", [], lambda c, p: c.create_transform_job(**local_job(p, model="ghost")), "ValidationException", f'Could not find model "{ARN_PREFIX}:model/ghost".'),
    ("duplicate model", [lambda c, p: c.create_model(**model_request("m1"))], lambda c, p: c.create_model(**model_request("m1")), "ValidationException", f'Cannot create already existing model "{ARN_PREFIX}:model/m1".'),
    ("duplicate job", [lambda c, p: c.create_model(**model_request("m1")), lambda c, p: c.create_transform_job(**local_job(p))], lambda c, p: c.create_transform_job(**local_job(p)), "ResourceInUse", "already exists"),
    ("describe unknown job", [], lambda c, p: c.describe_transform_job(TransformJobName="ghost"), "ValidationException", f"Could not find transform job '{ARN_PREFIX}:transform-job/ghost'."),
    ("stop unknown job", [], lambda c, p: c.stop_transform_job(TransformJobName="ghost"), "ValidationException", "Could not find transform job"),
    ("describe unknown model", [], lambda c, p: c.describe_model(ModelName="ghost"), "ValidationException", "Could not find model"),
    ("delete unknown model", [], lambda c, p: c.delete_model(ModelName="ghost"), "ValidationException", "Could not find model"),
    ("bad model name", [], lambda c, p: c.create_model(**model_request("bad_name")), "ValidationException", "Value 'bad_name' at 'ModelName' failed to satisfy constraint"),
    ("payload over limit", [lambda c, p: c.create_model(**model_request("m1"))], lambda c, p: c.create_transform_job(**local_job(p, MaxPayloadInMB=200)), "ValidationException", "MaxPayloadInMB"),
    ("retries over limit", [lambda c, p: c.create_model(**model_request("m1"))], lambda c, p: c.create_transform_job(**local_job(p, ModelClientConfig={"InvocationsMaxRetries": 9})), "ValidationException", "ModelClientConfig.InvocationsMaxRetries"),
    ("bad sort key", [], lambda c, p: c.list_transform_jobs(SortBy="Size"), "ValidationException", "SortBy"),
    ("bad next token", [], lambda c, p: c.list_models(NextToken="not-a-token"), "ValidationException", "NextToken"),
    ("feature not built yet", [], lambda c, p: c.create_model(ModelName="m1", Containers=[{"Image": "a"}, {"Image": "b"}], InferenceExecutionConfig={"Mode": "Direct"}), "ValidationException", "not built"),
    ("operation not served", [], lambda c, p: c.list_endpoints(), "UnknownOperationException", "Operation ListEndpoints is not supported by this server"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("given", "call", "code", "message"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_errors_parse_as_from_aws(
    client: Any, tmp_path: Path, given: list[Call], call: Call, code: str, message: str
) -> None:
    for step in given:
        step(client, tmp_path)
    with pytest.raises(ClientError) as caught:
        call(client, tmp_path)
    assert error_of(caught)[:2] == (code, 400)
    assert message in error_of(caught)[2]
    assert caught.value.response["ResponseMetadata"]["RequestId"]


def test_a_refused_job_leaves_nothing_behind(client: Any, tmp_path: Path) -> None:
    with pytest.raises(ClientError):
        client.create_transform_job(**local_job(tmp_path, model="ghost"))
    assert client.list_transform_jobs()["TransformJobSummaries"] == []


RAW_CASES: list[tuple[str, str, str, dict[str, str], bytes, int, str]] = [
    ("malformed JSON", "POST", "/", {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": JSON_11}, b"{not json", 400, "SerializationException"),
    ("JSON but not an object", "POST", "/", {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": JSON_11}, b"[1, 2]", 400, "SerializationException"),
    ("wrong content type", "POST", "/", {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/json"}, b"{}", 415, "UnsupportedMediaTypeException"),
    ("no content type", "POST", "/", {"X-Amz-Target": "SageMaker.ListModels"}, b"{}", 415, "UnsupportedMediaTypeException"),
    ("no target", "POST", "/", {"Content-Type": JSON_11}, b"{}", 400, "UnknownOperationException"),
    ("another service's target", "POST", "/", {"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": JSON_11}, b"{}", 400, "UnknownOperationException"),
    ("unknown operation", "POST", "/", {"X-Amz-Target": "SageMaker.FlyToTheMoon", "Content-Type": JSON_11}, b"{}", 400, "UnknownOperationException"),
    ("unknown path", "POST", "/2017-07-24/models", {"Content-Type": JSON_11}, b"{}", 404, "NotFoundException"),
    ("wrong method", "GET", "/", {}, b"", 405, "MethodNotAllowedException"),
    ("runtime API not built", "POST", "/endpoints/my-endpoint/invocations", {"Content-Type": "text/csv"}, b"1,2\n", 501, "NotImplementedException"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "code"),
    [case[1:] for case in RAW_CASES],
    ids=[case[0] for case in RAW_CASES],
)
def test_protocol_errors_are_json_not_crashes(
    open_server: Any,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    code: str,
) -> None:
    response = httpx.request(method, open_server.endpoint_url + path, headers=headers, content=body)
    assert response.status_code == status
    assert response.headers["Content-Type"] == JSON_11
    assert response.headers["x-amzn-RequestId"]
    error = response.json()
    assert error["__type"] == code
    assert error["message"]
    # the server is still there
    assert httpx.get(open_server.endpoint_url + "/ping").status_code == 200


def test_bodies_need_a_bounded_length(open_server: Any) -> None:
    host, port = open_server.endpoint_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
        reply = connection.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 413 ") and b"RequestEntityTooLargeException" in reply

    chunks = iter([b"{}"])
    response = httpx.post(
        open_server.endpoint_url, headers={"Content-Type": JSON_11}, content=chunks
    )
    assert (response.status_code, response.json()["__type"]) == (411, "LengthRequiredException")


def test_the_runtime_route_says_what_is_missing(open_server: Any) -> None:
    url = f"{open_server.endpoint_url}/endpoints/my-endpoint/invocations"
    message = httpx.post(url, content=b"1\n").json()["message"]
    assert "'my-endpoint'" in message and "real-time endpoints are not built yet" in message


def test_requests_may_be_empty_and_content_types_carry_parameters(open_server: Any) -> None:
    headers = {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": f"{JSON_11}; charset=utf-8"}
    response = httpx.post(open_server.endpoint_url + "/", headers=headers, content=b"")
    assert response.status_code == 200
    assert response.json() == {"Models": []}


def test_ping_answers_health_checks(open_server: Any) -> None:
    response = httpx.get(open_server.endpoint_url + "/ping")
    assert response.status_code == 200
    assert response.headers["x-amzn-RequestId"]


# --- paginators and waiters ----------------------------------------------------------


def test_paginators_walk_every_page(client: Any, tmp_path: Path) -> None:
    for i in range(5):
        client.create_model(**model_request(f"m{i}"))
        client.create_transform_job(**local_job(tmp_path, name=f"job-{i}", model=f"m{i}"))
    paging = {"SortBy": "Name", "SortOrder": "Ascending", "PaginationConfig": {"PageSize": 2}}

    model_pages = list(client.get_paginator("list_models").paginate(**paging))
    assert [len(page["Models"]) for page in model_pages] == [2, 2, 1]
    assert [m["ModelName"] for p in model_pages for m in p["Models"]] == [f"m{i}" for i in range(5)]

    job_pages = list(client.get_paginator("list_transform_jobs").paginate(**paging))
    assert [len(page["TransformJobSummaries"]) for page in job_pages] == [2, 2, 1]
    names = [j["TransformJobName"] for p in job_pages for j in p["TransformJobSummaries"]]
    assert names == [f"job-{i}" for i in range(5)]

    first = client.list_transform_jobs(MaxResults=2, SortBy="Name", SortOrder="Ascending")
    second = client.list_transform_jobs(
        MaxResults=2, SortBy="Name", SortOrder="Ascending", NextToken=first["NextToken"]
    )
    assert [j["TransformJobName"] for j in second["TransformJobSummaries"]] == ["job-2", "job-3"]


def test_the_waiter_follows_a_job_over_s3_to_its_outputs(
    client: Any,
    seaweed_s3: Any,
    s3_env: Callable[[Any], Any],
    new_bucket: Callable[[Any], str],
    model_archive: Callable[[str], str],
) -> None:
    inputs = {
        "a.csv": "1,2\n3,4\n",
        "sub/b.csv": "5,6\r\n\r\n7,8",
        "c.csv": "".join(f"{i}\n" for i in range(300)),
    }
    server = s3_env(seaweed_s3)  # the jobs' controllers read S3 with these settings
    bucket, s3 = new_bucket(server), server.client()
    for key, text in inputs.items():
        s3.put_object(Bucket=bucket, Key=f"in/{key}", Body=text.encode())
    s3.upload_file(model_archive(ECHO_HANDLER).removeprefix("file://"), bucket, "model.tar.gz")

    client.create_model(**model_request("m1", f"s3://{bucket}/model.tar.gz"))
    client.create_transform_job(
        **job_request(
            input_uri=f"s3://{bucket}/in/",
            output_path=f"s3://{bucket}/out",
            TransformResources={"InstanceCount": 2},
        )
    )
    client.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="job-1", WaiterConfig=WAIT
    )

    described = client.describe_transform_job(TransformJobName="job-1")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(f"out/{k}.out" for k in inputs)
    for key, text in inputs.items():
        assert s3.get_object(Bucket=bucket, Key=f"out/{key}.out")["Body"].read() == echoed(text)


def test_the_waiter_fails_on_a_failed_job(client: Any, tmp_path: Path) -> None:
    client.create_model(**model_request("m1"))
    client.create_transform_job(**local_job(tmp_path))  # no input folder
    with pytest.raises(WaiterError) as caught:
        client.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="job-1", WaiterConfig=WAIT
        )
    assert caught.value.last_response["TransformJobStatus"] == "Failed"
    assert "no input objects" in caught.value.last_response["FailureReason"]


def test_the_waiter_fails_at_once_on_an_unknown_job(client: Any) -> None:
    with pytest.raises(WaiterError, match="terminal failure"):
        client.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="ghost", WaiterConfig=WAIT
        )


def test_stop_through_boto3(
    client: Any, tmp_path: Path, model_archive: Callable[[str], str]
) -> None:
    write_inputs(
        tmp_path, {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(40)) for i in range(2)}
    )
    client.create_model(**model_request("m1", model_archive(SLOW_HANDLER)))
    client.create_transform_job(**local_job(tmp_path, BatchStrategy="SingleRecord"))
    wait_until_started(client, "job-1")

    stopped = client.stop_transform_job(TransformJobName="job-1")
    assert stopped["ResponseMetadata"]["HTTPStatusCode"] == 200
    status = client.describe_transform_job(TransformJobName="job-1")["TransformJobStatus"]
    assert status in ("Stopping", "Stopped")
    client.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="job-1", WaiterConfig=WAIT
    )
    assert (
        client.describe_transform_job(TransformJobName="job-1")["TransformJobStatus"] == "Stopped"
    )
    assert not list((tmp_path / "out").glob("*")), "a stopped job leaves no partial outputs"


# --- our own clients: the CLI and the SDK, remote -----------------------------------


def test_the_cli_talks_to_the_server(
    api_server: Any, aws_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = api_server.endpoint_url
    document = tmp_path / "model.json"
    document.write_text(json.dumps(model_request("m1")))

    assert (
        cli.main(["--endpoint-url", url, "create-model", "--cli-input-json", f"file://{document}"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["ModelArn"] == f"{ARN_PREFIX}:model/m1"
    assert cli.main(["describe-model", "--endpoint-url", url, "--model-name", "m1"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["ModelName"] == "m1"
    assert described["CreationTime"].endswith("+00:00"), "UTC, as the embedded service prints"
    assert api_server.client().describe_model(ModelName="m1")["ModelArn"] == described["ModelArn"]

    job = json.dumps(local_job(tmp_path))
    assert cli.main(["--endpoint-url", url, "create-transform-job", "--cli-input-json", job]) == 0
    capsys.readouterr()
    assert (
        cli.main(["--endpoint-url", url, "create-transform-job", "--cli-input-json", job])
        == cli.EXIT_SERVICE
    )
    assert capsys.readouterr().err.startswith(
        "An error occurred (ResourceInUse) when calling the CreateTransformJob operation: "
    )


def test_the_installed_command_reaches_the_server(api_server: Any, aws_env: None) -> None:
    api_server.client().create_model(**model_request("m1"))
    command = [str(Path(sys.executable).parent / "batchtransform"), "describe-transform-job"]
    command += ["--endpoint-url", api_server.endpoint_url, "--transform-job-name", "ghost"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == cli.EXIT_SERVICE, done.stderr
    assert "(ValidationException) when calling the DescribeTransformJob operation" in done.stderr
    assert "Could not find transform job" in done.stderr


def test_a_remote_session_runs_a_transformer(
    api_server: Any,
    aws_env: None,
    tmp_path: Path,
    model_archive: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_inputs(tmp_path, {"a.csv": "1,2\n3,4\n"})
    session = Session(endpoint_url=api_server.endpoint_url)
    assert isinstance(session.service, RemoteService)
    session.create_model(**model_request("m1", model_archive(ECHO_HANDLER)))
    transformer = Transformer(
        model_name="m1",
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=(tmp_path / "out").as_uri(),
        assemble_with="Line",
        accept="text/csv",
        sagemaker_session=session,
    )
    transformer.transform((tmp_path / "in").as_uri(), content_type="text/csv", split_type="Line")

    assert (tmp_path / "out" / "a.csv.out").read_bytes() == echoed("1,2\n3,4\n")
    assert "[sagemaker logs]" in capsys.readouterr().out, "logs through the Logs API"
    described = transformer.describe()
    assert described["Progress"]["RecordsProcessed"] == 2, "Progress survives botocore"
    assert described["Progress"]["ObjectsCompleted"] == 1
    assert described["CreationTime"].tzinfo == dt.timezone.utc


def scenario_missing_job(session: Session, tag: str) -> None:
    session.describe_transform_job(TransformJobName=f"ghost-{tag}")


def scenario_duplicate_model(session: Session, tag: str) -> None:
    session.create_model(**model_request(f"dup-{tag}"))
    session.create_model(**model_request(f"dup-{tag}"))


def scenario_bad_field(session: Session, tag: str) -> None:
    session.create_model(**model_request(f"m-{tag}"))
    session.create_transform_job(**job_request(model=f"m-{tag}", MaxPayloadInMB=200))


def scenario_not_built(session: Session, tag: str) -> None:
    containers = [{"Image": "batchtransform/python"}] * 2
    mode = {"Mode": "Direct"}
    session.create_model(ModelName=tag, Containers=containers, InferenceExecutionConfig=mode)


def scenario_unknown_operation(session: Session, tag: str) -> None:
    session.call("CreateEndpoint", {"EndpointName": tag})


@pytest.mark.parametrize(
    ("scenario", "kind"),
    [
        (scenario_missing_job, NotFoundError),
        (scenario_duplicate_model, ConflictError),
        (scenario_bad_field, BTValidationError),
        (scenario_not_built, NotBuiltError),
        (scenario_unknown_operation, BTValidationError),
    ],
)
def test_remote_sessions_raise_what_embedded_ones_raise(
    api_server: Any,
    aws_env: None,
    scenario: Callable[[Session, str], None],
    kind: type[Exception],
) -> None:
    raised = []
    for tag, session in (
        ("here", Session()),
        ("there", Session(endpoint_url=api_server.endpoint_url)),
    ):
        with pytest.raises(kind) as caught:
            scenario(session, tag)
        error = caught.value
        raised.append((type(error), error.code, getattr(error, "field", None)))  # type: ignore[attr-defined]
    assert raised[0] == raised[1]


def test_the_environment_names_the_server(
    api_server: Any, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_ENDPOINT_URL", api_server.endpoint_url)
    session = Session()
    assert isinstance(session.service, RemoteService)
    session.create_model(**model_request("m1"))
    assert api_server.client().list_models()["Models"][0]["ModelName"] == "m1"
