"""Requests are checked against SageMaker's service model plus the service-side rules."""

from __future__ import annotations

from typing import Any

import pytest
from documents import job_request, model_request

from batchtransform import NotBuiltError, ValidationError
from batchtransform.service import Service
from batchtransform.store import open_store


@pytest.fixture
def service() -> Service:
    service = Service(open_store(), launcher=lambda name: None)
    service.call("CreateModel", model_request())
    return service


REJECTED_JOBS: list[tuple[str, dict[str, Any], str, str]] = [
    ("underscore in name", {"TransformJobName": "bad_name"}, "TransformJobName", "pattern"),
    ("leading hyphen", {"TransformJobName": "-x"}, "TransformJobName", "pattern"),
    ("name too long", {"TransformJobName": "a" * 64}, "TransformJobName", "less than or equal to 63"),
    ("no model", {"ModelName": None}, "ModelName", "Missing required field"),
    ("count 0", {"TransformResources": {"InstanceCount": 0}}, "TransformResources.InstanceCount", "greater than or equal to 1"),
    ("count not int", {"TransformResources": {"InstanceCount": "2"}}, "TransformResources.InstanceCount", "must be an integer"),
    ("bad split", {"TransformInput": {"SplitType": "Lines"}}, "TransformInput.SplitType", "enum value set"),
    ("bad strategy", {"BatchStrategy": "Multi"}, "BatchStrategy", "enum value set"),
    ("payload over 100", {"MaxPayloadInMB": 101}, "MaxPayloadInMB", "at most 100"),
    ("payload x concurrency", {"MaxPayloadInMB": 20, "MaxConcurrentTransforms": 6}, "MaxConcurrentTransforms", "at most 100"),
    ("retries 4", {"ModelClientConfig": {"InvocationsMaxRetries": 4}}, "ModelClientConfig.InvocationsMaxRetries", "less than or equal to 3"),
    ("timeout 0", {"ModelClientConfig": {"InvocationsTimeoutInSeconds": 0}}, "ModelClientConfig.InvocationsTimeoutInSeconds", "greater than or equal to 1"),
    ("timeout 3601", {"ModelClientConfig": {"InvocationsTimeoutInSeconds": 3601}}, "ModelClientConfig.InvocationsTimeoutInSeconds", "less than or equal to 3600"),
    ("17 env entries", {"Environment": {f"K{i}": "v" for i in range(17)}}, "Environment", "less than or equal to 16"),
    ("bad env key", {"Environment": {"1KEY": "v"}}, "Environment.key", "pattern"),
    ("unknown member", {"Bogus": 1}, "Bogus", "Unknown field"),
    ("bad s3 uri", {"TransformOutput": {"S3OutputPath": "ftp://x/y"}}, "TransformOutput.S3OutputPath", "pattern"),
    ("augmented manifest", {"TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "AugmentedManifestFile"}}}}, "TransformInput.DataSource.S3DataSource.S3DataType", "not supported"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [case[1:] for case in REJECTED_JOBS],
    ids=[case[0] for case in REJECTED_JOBS],
)
def test_rejected_job_names_field_and_rule_and_records_nothing(
    service: Service, change: dict[str, Any], field: str, rule: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        service.call("CreateTransformJob", job_request(**change))
    assert caught.value.field == field
    assert rule in str(caught.value)
    assert service.call("ListTransformJobs")["TransformJobSummaries"] == []


ACCEPTED_JOBS: list[tuple[str, dict[str, Any]]] = [
    ("minimal", {}),
    ("any instance type", {"TransformResources": {"InstanceType": "local"}}),
    ("local path input", {"TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "/data/in/"}}}}),
    ("file url output", {"TransformOutput": {"S3OutputPath": "file:///tmp/out"}}),
    ("payload 0 unlimited", {"MaxPayloadInMB": 0, "MaxConcurrentTransforms": 8}),
    ("payload x concurrency = 100", {"MaxPayloadInMB": 25, "MaxConcurrentTransforms": 4}),
    ("16 env entries", {"Environment": {f"K{i}": "v" for i in range(16)}}),
    ("gzip", {"TransformInput": {"CompressionType": "Gzip"}}),
    ("tags", {"Tags": [{"Key": "team a/b", "Value": "x@y"}]}),
    ("default data processing", {"DataProcessing": {"InputFilter": "$", "JoinSource": "None"}}),
]  # fmt: skip


@pytest.mark.parametrize("change", [c[1] for c in ACCEPTED_JOBS], ids=[c[0] for c in ACCEPTED_JOBS])
def test_accepted_jobs(service: Service, change: dict[str, Any]) -> None:
    response = service.call("CreateTransformJob", job_request(**change))
    assert response["TransformJobArn"].endswith(":transform-job/job-1")


NOT_BUILT: list[tuple[str, dict[str, Any], str]] = [
    ("RecordIO", {"TransformInput": {"SplitType": "RecordIO"}}, "SplitType=RecordIO"),
    ("TFRecord", {"TransformInput": {"SplitType": "TFRecord"}}, "SplitType=TFRecord"),
    ("manifest", {"TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "ManifestFile"}}}}, "ManifestFile"),
    ("join", {"DataProcessing": {"JoinSource": "Input"}}, "DataProcessing"),
    ("filter", {"DataProcessing": {"InputFilter": "$[1:]"}}, "DataProcessing"),
    ("capture", {"DataCaptureConfig": {"DestinationS3Uri": "s3://b/c"}}, "DataCaptureConfig"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "feature"), [c[1:] for c in NOT_BUILT], ids=[c[0] for c in NOT_BUILT]
)
def test_features_not_built_yet_say_so(
    service: Service, change: dict[str, Any], feature: str
) -> None:
    with pytest.raises(NotBuiltError, match="not built yet") as caught:
        service.call("CreateTransformJob", job_request(**change))
    assert feature in str(caught.value)


def test_unknown_image_is_refused_at_job_creation(service: Service) -> None:
    service.call("CreateModel", {"ModelName": "other", "PrimaryContainer": {"Image": "my/image:1"}})
    with pytest.raises(NotBuiltError, match="my/image:1"):
        service.call("CreateTransformJob", job_request(model="other"))


REJECTED_MODELS: list[tuple[str, dict[str, Any], str]] = [
    ("no container", {"ModelName": "m2"}, "PrimaryContainer"),
    ("bad name", {"ModelName": "m_2", "PrimaryContainer": {"Image": "x"}}, "ModelName"),
    ("env over 32 KB", {"ModelName": "m2", "PrimaryContainer": {"Image": "x", "Environment": {f"K{i}": "v" * 1000 for i in range(40)}}}, "PrimaryContainer.Environment"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "field"), [c[1:] for c in REJECTED_MODELS], ids=[c[0] for c in REJECTED_MODELS]
)
def test_rejected_models(service: Service, request_: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        service.call("CreateModel", request_)
    assert caught.value.field == field
