"""Request documents for tests, shaped as `aws sagemaker ... --cli-input-json` takes them."""

from __future__ import annotations

import copy
from typing import Any


def model_request(name: str = "m1", model_data_url: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"Image": "batchtransform/python"}
    if model_data_url:
        container["ModelDataUrl"] = model_data_url
    return {"ModelName": name, "PrimaryContainer": container}


def job_request(
    name: str = "job-1",
    model: str = "m1",
    input_uri: str = "s3://bucket/in/",
    output_path: str = "s3://bucket/out/",
    **overrides: Any,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output_path, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    return deep_merge(request, overrides)


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied; a None value removes the member."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
