"""Requests are checked against SageMaker's service model plus the service-side rules."""

from __future__ import annotations

from typing import Any

import pytest
from documents import job_request, model_request

from batchtransform import ValidationError
from batchtransform.service import Service
from batchtransform.store import open_store


@pytest.fixture
def service() -> Service:
    service = Service(open_store(), launcher=lambda record: None)
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
    ("filter over 63 chars", {"DataProcessing": {"InputFilter": "$" + "[0]" * 21}}, "DataProcessing.InputFilter", "less than or equal to 63"),
    ("filter without $", {"DataProcessing": {"InputFilter": "[1:]"}}, "DataProcessing.InputFilter", "Invalid JsonPath: [1:]: it must start with $"),
    ("recursive descent", {"DataProcessing": {"InputFilter": "$..a"}}, "DataProcessing.InputFilter", "recursive descent"),
    ("two ranges", {"DataProcessing": {"OutputFilter": "$[0:2,246:]"}, "TransformOutput": {"Accept": "text/csv"}}, "DataProcessing.OutputFilter", "only one range"),
    ("name on a csv row", {"DataProcessing": {"InputFilter": "$.features"}}, "DataProcessing.InputFilter", "array of strings"),
    ("filter on a binary type", {"DataProcessing": {"InputFilter": "$[0]"}, "TransformInput": {"ContentType": "application/x-recordio-protobuf"}}, "TransformInput.ContentType", "text/csv, application/json or application/jsonlines"),
    ("join without accept", {"DataProcessing": {"JoinSource": "Input"}}, "TransformOutput.Accept", "application/jsonlines"),
    ("join csv with json", {"DataProcessing": {"JoinSource": "Input"}, "TransformOutput": {"Accept": "application/json"}}, "TransformOutput.Accept", "same format"),
    ("filter with recordio", {"DataProcessing": {"InputFilter": "$[1:]"}, "TransformInput": {"SplitType": "RecordIO"}}, "TransformInput.SplitType", "cannot be combined"),
    ("csv filter, assemble none", {"DataProcessing": {"InputFilter": "$[1:]"}, "TransformOutput": {"AssembleWith": "None"}}, "TransformOutput.AssembleWith", "AssembleWith=Line"),
    ("inference ids without accept", {"DataCaptureConfig": {"DestinationS3Uri": "s3://b/c", "GenerateInferenceId": True}}, "TransformOutput.Accept", "inference ids"),
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
    ("RecordIO", {"TransformInput": {"SplitType": "RecordIO", "ContentType": "application/x-recordio"}}),
    ("TFRecord", {"TransformInput": {"SplitType": "TFRecord", "ContentType": "application/x-tfexample"}}),
    ("manifest", {"TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": "s3://b/in.manifest"}}}}),
    ("csv filter", {"DataProcessing": {"InputFilter": "$[1:]"}}),
    ("csv join and filter", {"DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}, "TransformOutput": {"Accept": "text/csv"}}),
    ("index list with a range", {"DataProcessing": {"OutputFilter": "$[0,2:]"}, "TransformOutput": {"Accept": "text/csv"}}),
    ("jsonlines names", {"DataProcessing": {"InputFilter": "$.features", "JoinSource": "Input", "OutputFilter": "$['id','SageMakerOutput']"}, "TransformInput": {"ContentType": "application/jsonlines"}, "TransformOutput": {"Accept": "application/jsonlines"}}),
    ("json document join", {"DataProcessing": {"JoinSource": "Input"}, "TransformInput": {"ContentType": "application/json", "SplitType": "None"}, "TransformOutput": {"Accept": "application/json", "AssembleWith": "None"}}),
    ("capture", {"DataCaptureConfig": {"DestinationS3Uri": "s3://b/c"}}),
    ("capture with ids", {"DataCaptureConfig": {"DestinationS3Uri": "s3://b/c", "GenerateInferenceId": True}, "TransformOutput": {"Accept": "text/csv"}}),
]  # fmt: skip


@pytest.mark.parametrize("change", [c[1] for c in ACCEPTED_JOBS], ids=[c[0] for c in ACCEPTED_JOBS])
def test_accepted_jobs(service: Service, change: dict[str, Any]) -> None:
    response = service.call("CreateTransformJob", job_request(**change))
    assert response["TransformJobArn"].endswith(":transform-job/job-1")


@pytest.mark.parametrize("image", ["My/Image:1", "process://relative/serve", "a b"])
def test_a_malformed_image_is_refused_at_model_creation(service: Service, image: str) -> None:
    with pytest.raises(ValidationError, match="Image"):
        service.call("CreateModel", {"ModelName": "other", "PrimaryContainer": {"Image": image}})
    assert service.call("ListModels", {"NameContains": "other"})["Models"] == []


@pytest.mark.parametrize("image", ["my/image:1", "sklearn", "process:///usr/bin/serve"])
def test_well_formed_images_are_accepted(service: Service, image: str) -> None:
    service.call("CreateModel", {"ModelName": "other", "PrimaryContainer": {"Image": image}})
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
