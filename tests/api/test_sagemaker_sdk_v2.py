"""The real SageMaker Python SDK v2 against ``batchtransform server``, as a user runs it.

A user's script, run by the SDK's own interpreter (``.venv-clients``), with data and the
model on an S3-compatible server: ``Transformer(...).transform(...)`` with the SDK's
defaults (``wait=True, logs=True``) follows the job's CloudWatch logs to its end, then
``wait()`` prints them again, and a job that fails raises the SDK's own
``UnexpectedStatusException`` with the job's FailureReason. The only settings the script
needs are AWS's standard endpoint variables for SageMaker and CloudWatch Logs.

The SDK polls its own way (it sleeps 10 s before it first describes a job), so this one
script does everything in one process. It prints the model's lines twice: its stream
listing asks for the next page without the page's token, so it lists the first stream
again (the job has two streams for its one instance).
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clients import client_program
from models import tar_model, write_model
from s3servers import S3Server

LOUD_HANDLER = """
def model_fn(model_dir):
    print("the cancer model is loaded and ready", flush=True)
    return "ok"

def transform_fn(model, body, content_type, accept):
    text = body.decode() if isinstance(body, bytes) else body
    return "".join(f"{int(line.split(',')[0]) * 2}\\n" for line in text.split("\\n") if line)
"""

BROKEN_HANDLER = """
def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    raise ValueError("this model refuses every row")
"""

# As the README shows it: only the endpoint variables point the SDK at the server.
USER_SCRIPT = textwrap.dedent(
    """
    import sys
    import time

    import sagemaker
    from sagemaker.exceptions import UnexpectedStatusException
    from sagemaker.transformer import Transformer

    bucket = sys.argv[1]
    session = sagemaker.Session()
    transformer = Transformer(
        model_name="cancer",
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=f"s3://{bucket}/out",
        sagemaker_session=session,
    )
    transformer.transform(
        f"s3://{bucket}/in/", content_type="text/csv", split_type="Line", job_name="sdk-job"
    )
    print("=== transform returned", flush=True)
    transformer.wait()
    print("=== wait returned", flush=True)

    broken = Transformer(
        model_name="broken",
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=f"s3://{bucket}/broken-out",
        sagemaker_session=session,
    )
    broken.transform(
        f"s3://{bucket}/in/", content_type="text/csv", split_type="Line",
        job_name="sdk-broken", wait=False,
        model_client_config={"InvocationsMaxRetries": 0},
    )
    client = session.sagemaker_client
    while client.describe_transform_job(TransformJobName="sdk-broken")[
        "TransformJobStatus"
    ] == "InProgress":
        time.sleep(0.5)
    try:
        broken.wait()
    except UnexpectedStatusException as exc:
        print(f"=== raised UnexpectedStatusException: {exc}", flush=True)
    """
)


def upload_model(s3: S3Server, bucket: str, tmp_path: Path, name: str, handler: str) -> str:
    archive = tar_model(write_model(tmp_path / name, handler), tmp_path / f"{name}.tar.gz")
    s3.client().upload_file(str(archive), bucket, f"models/{name}.tar.gz")
    return f"s3://{bucket}/models/{name}.tar.gz"


def sdk_environment(api_server: Any, tmp_path: Path) -> dict[str, str]:
    """A user's environment: the server's key, its address for SageMaker and for Logs."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path / "user-home"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": api_server.access_key,
        "AWS_SECRET_ACCESS_KEY": api_server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_SAGEMAKER": api_server.endpoint_url,
        "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": api_server.endpoint_url,
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }


def test_the_sdk_v2_transformer_runs_waits_and_prints_the_logs(
    api_server: Any,
    moto_s3: S3Server,
    s3_env: Callable[[S3Server], S3Server],
    new_bucket: Callable[[S3Server], str],
    tmp_path: Path,
) -> None:
    s3 = s3_env(moto_s3)  # where the server's jobs read and write
    bucket = new_bucket(s3)
    s3.client().put_object(Bucket=bucket, Key="in/rows.csv", Body=b"1,10\n2,20\n3,30\n")
    client = api_server.client()
    for name, handler in (("cancer", LOUD_HANDLER), ("broken", BROKEN_HANDLER)):
        url = upload_model(s3, bucket, tmp_path, name, handler)
        client.create_model(
            ModelName=name, PrimaryContainer={"Image": "batchtransform/python", "ModelDataUrl": url}
        )
    (tmp_path / "user-home").mkdir()

    done = subprocess.run(
        [client_program("python"), "-c", USER_SCRIPT, bucket],
        capture_output=True,
        text=True,
        env=sdk_environment(api_server, tmp_path),
        timeout=240,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    first, rest = done.stdout.split("=== transform returned\n")
    again, failed = rest.split("=== wait returned\n")
    for printed in (first, again):
        assert "the cancer model is loaded and ready" in printed, "the model's own log"
        assert ":[sagemaker logs]: MaxConcurrentTransforms=1, MaxPayloadInMB=6" in printed
    output = s3.client().get_object(Bucket=bucket, Key="out/rows.csv.out")["Body"].read()
    assert output == b"2\n4\n6\n"
    assert "=== raised UnexpectedStatusException: Error for Transform job sdk-broken: Failed." in (
        failed
    )
    reason = client.describe_transform_job(TransformJobName="sdk-broken")["FailureReason"]
    assert f"Reason: {reason}" in failed, "the SDK's exception carries our FailureReason"
    assert "this model refuses every row" in failed, "and the model's log was printed"
