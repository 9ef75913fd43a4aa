"""ModelDataSource: uncompressed model data under a prefix, one object, or a model.tar.gz,
checked at CreateModel and fetched by real jobs from local folders and S3 servers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from documents import job_request
from models import tar_model, write_model
from s3servers import S3Server
from test_end_to_end import outputs, wait_for, write_inputs

from batchtransform import Session, ValidationError
from batchtransform.errors import NotBuiltError, StorageError
from batchtransform.model_data import fetch_model_data
from batchtransform.shapes import ModelDataSpec, ModelSpec

# Reads a weights file from the model folder and a nested one, so the layout is checked.
WEIGHTS_HANDLER = """
import os

def model_fn(model_dir):
    with open(os.path.join(model_dir, "weights.txt")) as a, open(os.path.join(model_dir, "deep", "more", "bias.txt")) as b:
        return a.read().strip() + b.read().strip()

def transform_fn(model, body, content_type, accept):
    return "".join(f"{model}:{line}\\n" for line in body.splitlines())
"""
FILES = {"weights.txt": "w7\n", "deep/more/bias.txt": "+b2\n"}
INPUTS = {"a.csv": "1\n2\n", "sub/b.csv": "3\n"}
EXPECTED = {"a.csv.out": b"w7+b2:1\nw7+b2:2\n", "sub/b.csv.out": b"w7+b2:3\n"}


def source(uri: str, data_type: str = "S3Prefix", compression: str = "None") -> dict[str, Any]:
    return {"S3DataSource": {"S3Uri": uri, "S3DataType": data_type, "CompressionType": compression}}


def model_folder(root: Path) -> Path:
    folder = write_model(root, WEIGHTS_HANDLER)
    for name, text in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def run(session: Session, tmp_path: Path, container: dict[str, Any]) -> dict[str, Any]:
    session.create_model(ModelName="m1", PrimaryContainer=container)
    write_inputs(tmp_path / "in", dict(INPUTS))
    request = job_request(
        input_uri=str(tmp_path / "in") + "/",
        output_path=str(tmp_path / "out"),
        TransformResources={"InstanceCount": 2},
    )
    session.create_transform_job(**request)
    return wait_for(session, "job-1")


# --- CreateModel ---------------------------------------------------------------------------

PREFIX = "s3://bucket/model/"
REFUSED = [
    (
        "both",
        {"ModelDataUrl": "s3://b/m.tar.gz", "ModelDataSource": source(PREFIX)},
        ValidationError,
        "PrimaryContainer.ModelDataSource",
        "not both",
    ),
    (
        "no S3DataSource",
        {"ModelDataSource": {}},
        ValidationError,
        "PrimaryContainer.ModelDataSource.S3DataSource",
        "is required",
    ),
    (
        "prefix without /",
        {"ModelDataSource": source("s3://bucket/model")},
        ValidationError,
        "PrimaryContainer.ModelDataSource.S3DataSource.S3Uri",
        "must end with '/'",
    ),
    (
        "prefix gzip",
        {"ModelDataSource": source(PREFIX, "S3Prefix", "Gzip")},
        ValidationError,
        "PrimaryContainer.ModelDataSource.S3DataSource.CompressionType",
        "must be None",
    ),
    (
        "object ending /",
        {"ModelDataSource": source(PREFIX, "S3Object", "Gzip")},
        ValidationError,
        "PrimaryContainer.ModelDataSource.S3DataSource.S3Uri",
        "names one object",
    ),
    (
        "bad enum",
        {"ModelDataSource": source(PREFIX, "S3Folder")},
        ValidationError,
        "PrimaryContainer.ModelDataSource.S3DataSource.S3DataType",
        "enum value set",
    ),
    (
        "missing compression",
        {"ModelDataSource": {"S3DataSource": {"S3Uri": PREFIX, "S3DataType": "S3Prefix"}}},
        ValidationError,
        "PrimaryContainer.ModelDataSource.S3DataSource.CompressionType",
        "Missing required field",
    ),
    (
        "manifest",
        {
            "ModelDataSource": {
                "S3DataSource": {
                    **source(PREFIX)["S3DataSource"],
                    "ManifestS3Uri": "s3://b/manifest.csv",
                }
            }
        },
        NotBuiltError,
        None,
        "ManifestS3Uri",
    ),
]


@pytest.mark.parametrize(
    ("container", "error", "field", "text"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_create_model_refuses(
    container: dict[str, Any], error: type[Exception], field: str | None, text: str
) -> None:
    request = {
        "ModelName": "m1",
        "PrimaryContainer": {"Image": "batchtransform/python", **container},
    }
    with pytest.raises(error, match=text) as caught:
        Session().create_model(**request)
    if field is not None:
        assert getattr(caught.value, "field", None) == field


def test_pipeline_containers_name_their_own_member() -> None:
    doc = {
        "ModelName": "m1",
        "Containers": [
            {"Image": "a", "ModelDataUrl": "s3://b/a.tar.gz"},
            {"Image": "b", "ModelDataSource": source(PREFIX)},
        ],
    }
    containers = ModelSpec.from_request(doc).containers
    assert containers[0].model_data == ModelDataSpec(
        "s3://b/a.tar.gz", "Containers[0].ModelDataUrl"
    )
    assert containers[1].model_data == ModelDataSpec(
        PREFIX, "Containers[1].ModelDataSource.S3DataSource.S3Uri", "S3Prefix", "None"
    )
    with pytest.raises(ValidationError, match="must end with '/'") as caught:
        Session().create_model(
            **{
                **doc,
                "Containers": [
                    doc["Containers"][0],
                    {"Image": "b", "ModelDataSource": source("s3://b/p")},
                ],
            }
        )
    assert caught.value.field == "Containers[1].ModelDataSource.S3DataSource.S3Uri"


# --- real jobs -----------------------------------------------------------------------------


def test_an_uncompressed_local_prefix_is_the_model_folder(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "model")
    description = run(
        Session(),
        tmp_path,
        {"Image": "batchtransform/python", "ModelDataSource": source(f"{folder}/")},
    )
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert outputs(tmp_path / "out") == EXPECTED


def test_an_uncompressed_s3_prefix_is_the_model_folder(
    s3: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    client = s3.client()
    folder = model_folder(tmp_path / "model")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), s3_bucket, f"models/m1/{path.relative_to(folder)}")
    client.put_object(Bucket=s3_bucket, Key="models/m1/deep/", Body=b"")  # a folder marker
    client.put_object(Bucket=s3_bucket, Key="models/m1-other/weights.txt", Body=b"not mine")
    description = run(
        Session(),
        tmp_path,
        {
            "Image": "batchtransform/python",
            "ModelDataSource": source(f"s3://{s3_bucket}/models/m1/"),
        },
    )
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert outputs(tmp_path / "out") == EXPECTED


def test_an_s3_object_gzip_is_a_model_tar_gz(tmp_path: Path) -> None:
    archive = tar_model(model_folder(tmp_path / "model"), tmp_path / "model-archive")
    description = run(
        Session(),
        tmp_path,
        {
            "Image": "batchtransform/python",
            "ModelDataSource": source(str(archive), "S3Object", "Gzip"),
        },
    )
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert outputs(tmp_path / "out") == EXPECTED


def test_an_uncompressed_s3_object_is_one_file_named_by_its_key(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "serve.py").write_text(
        "import os\n\ndef model_fn(model_dir):\n"
        "    return open(os.path.join(model_dir, 'weights.bin')).read().strip()\n\n"
        "def transform_fn(model, body, content_type, accept):\n"
        "    return ''.join(f'{model}:{line}\\n' for line in body.splitlines())\n"
    )
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "weights.bin").write_text("w9\n")
    description = run(
        Session(),
        tmp_path,
        {
            "Image": "batchtransform/python",
            "ModelDataSource": source((tmp_path / "store" / "weights.bin").as_uri(), "S3Object"),
            "Environment": {"SAGEMAKER_PROGRAM": str(code / "serve.py")},
        },
    )
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert outputs(tmp_path / "out") == {"a.csv.out": b"w9:1\nw9:2\n", "sub/b.csv.out": b"w9:3\n"}


def test_a_prefix_with_no_model_files_fails_the_job_naming_it(
    s3: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    s3.client().put_object(Bucket=s3_bucket, Key="models/empty/", Body=b"")  # a marker only
    prefix = f"s3://{s3_bucket}/models/empty/"
    description = run(
        Session(), tmp_path, {"Image": "batchtransform/python", "ModelDataSource": source(prefix)}
    )
    assert description["TransformJobStatus"] == "Failed"
    reason = description["FailureReason"]
    assert f"PrimaryContainer.ModelDataSource.S3DataSource.S3Uri {prefix} not found" in reason
    assert "no model files under the prefix" in reason
    assert not (tmp_path / "out").exists()


# --- keys that would escape the model folder -----------------------------------------------


def test_a_key_escaping_the_folder_is_refused_before_anything_is_written(
    moto_s3: S3Server, s3_env: Callable[[S3Server], S3Server], tmp_path: Path
) -> None:
    server = s3_env(moto_s3)
    bucket = server.make_bucket()
    try:
        client = server.client()
        client.put_object(Bucket=bucket, Key="models/m/a-first.txt", Body=b"fine")
        client.put_object(Bucket=bucket, Key="models/m/../../evil.txt", Body=b"gotcha")
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
        assert "models/m/../../evil.txt" in keys, "the server keeps the key as sent"
        spec = ModelDataSpec(f"s3://{bucket}/models/m/", "S3Uri", "S3Prefix", "None")
        with pytest.raises(
            StorageError, match=r"refusing '\.\./\.\./evil\.txt', which points outside"
        ):
            fetch_model_data(spec, tmp_path / "a" / "model")
        assert not (tmp_path / "a" / "model" / "a-first.txt").exists()
        assert not (tmp_path / "evil.txt").exists()
    finally:
        server.remove_bucket(bucket)


@pytest.mark.parametrize(
    ("key", "rule"),
    [("models/m/x//y.txt", "may not be empty"), ("models/m/./y.txt", "may not be empty")],
)
def test_keys_sagemaker_refuses_are_refused(
    moto_s3: S3Server, s3_env: Callable[[S3Server], S3Server], tmp_path: Path, key: str, rule: str
) -> None:
    server = s3_env(moto_s3)
    bucket = server.make_bucket()
    try:
        server.client().put_object(Bucket=bucket, Key=key, Body=b"x")
        spec = ModelDataSpec(f"s3://{bucket}/models/m/", "S3Uri", "S3Prefix", "None")
        with pytest.raises(StorageError, match=rule):
            fetch_model_data(spec, tmp_path / "model")
    finally:
        server.remove_bucket(bucket)
