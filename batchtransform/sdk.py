"""The Python SDK: ``Session`` and ``Transformer``, named as in the SageMaker Python SDK.

Code written for ``sagemaker.transformer.Transformer`` ports by changing the import. The
``Session`` also answers the boto3 SageMaker client's methods (``create_model(ModelName=...)``,
``describe_transform_job(...)``), so ``sagemaker_session.sagemaker_client`` calls work too.

A session is embedded (SQLite and local processes, the default) or remote: with an
``endpoint_url`` (or ``BATCHTRANSFORM_ENDPOINT_URL``) it talks to a ``batchtransform server``
and behaves the same, responses and exceptions alike.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from batchtransform.cloudwatch_logs import LOG_GROUP
from batchtransform.errors import UnexpectedStatusException
from batchtransform.jobs import JobStatus
from batchtransform.remote import RemoteService
from batchtransform.service import OPERATIONS, Service

__all__ = ["Session", "Transformer"]

ENDPOINT_URL_VARIABLE = "BATCHTRANSFORM_ENDPOINT_URL"

_STATUS_MARKS = {
    "InProgress": ".",
    "Stopping": "_",
    "Completed": "!",
    "Failed": "*",
    "Stopped": "s",
}


class Session:
    """Where requests go: the embedded service (SQLite and local processes) by default, or
    the server at ``endpoint_url`` (else ``$BATCHTRANSFORM_ENDPOINT_URL``) when one is set."""

    def __init__(
        self, service: Service | RemoteService | None = None, endpoint_url: str | None = None
    ) -> None:
        if service is not None and endpoint_url is not None:
            raise ValueError("give a service or an endpoint_url, not both")
        endpoint_url = endpoint_url or os.environ.get(ENDPOINT_URL_VARIABLE)
        self.service: Service | RemoteService
        if service is not None:
            self.service = service
        elif endpoint_url:
            self.service = RemoteService(endpoint_url)
        else:
            self.service = Service()

    @property
    def sagemaker_client(self) -> Session:
        """boto3-client-style access, as ``sagemaker.Session().sagemaker_client`` offers."""
        return self

    def call(self, operation: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one API operation (``CreateTransformJob``, ...) with its request document."""
        return self.service.call(operation, request or {})

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        """``create_model(ModelName=...)`` and the other boto3 client method names."""
        operation = "".join(part.title() for part in name.split("_"))
        if operation not in OPERATIONS:
            raise AttributeError(name)
        return lambda **request: self.call(operation, request)

    def resume_transform_job(self, TransformJobName: str) -> dict[str, Any]:
        """Ours, not SageMaker's: take a Failed or Stopped job back to InProgress; only its
        work without a committed output runs again. Refused for a Completed or running
        job, and for one whose model was deleted."""
        return self.call("ResumeTransformJob", {"TransformJobName": TransformJobName})

    def wait_for_transform_job(self, job: str, poll: float = 5.0) -> dict[str, Any]:
        """Poll until the job ends; raise UnexpectedStatusException unless it Completed/Stopped."""
        while True:
            description = self.call("DescribeTransformJob", {"TransformJobName": job})
            if JobStatus(description["TransformJobStatus"]).terminal:
                return _checked(description)
            time.sleep(poll)

    def call_logs(self, operation: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one CloudWatch Logs read operation (``GetLogEvents``, ...) on the jobs' logs."""
        return self.service.call_logs(operation, request or {})

    def logs_for_transform_job(
        self, job_name: str, wait: bool = False, poll: float = 1.0, out: TextIO | None = None
    ) -> None:
        """Print the job's log streams; with ``wait``, follow them until the job ends.

        The logs are read through the CloudWatch Logs operations, as the SageMaker SDK
        reads them, so an embedded session and one on a server print the same lines.
        """
        out = out or sys.stdout
        self.call("DescribeTransformJob", {"TransformJobName": job_name})  # it exists

        def running() -> bool:
            description = self.call("DescribeTransformJob", {"TransformJobName": job_name})
            return wait and not JobStatus(description["TransformJobStatus"]).terminal

        for stream, line in follow_logs(self.call_logs, job_name, running, poll):
            print(f"[{stream}] {line}", file=out, flush=True)
        if wait:
            _checked(self.call("DescribeTransformJob", {"TransformJobName": job_name}))


def follow_logs(
    call_logs: Callable[[str, dict[str, Any]], dict[str, Any]],
    job_name: str,
    keep_going: Callable[[], bool],
    poll: float = 1.0,
) -> Iterator[tuple[str, str]]:
    """Yield ``(stream, message)`` for every event of the job's streams (``instance-1-...``,
    ``instance-1-.../data-log``), in time order within each round, then new ones as they
    come, until ``keep_going()`` is false (asked after a quiet round) and all is read.

    Each stream is read forward from its last ``nextForwardToken``; a token that comes
    back unchanged means the stream has nothing new.
    """
    tokens: dict[str, str] = {}
    finishing = False
    while True:
        streams = _job_streams(call_logs, job_name)
        events = [event for stream in streams for event in _new_events(call_logs, stream, tokens)]
        events.sort(key=lambda event: event[0])
        for _, stream, message in events:
            yield stream.removeprefix(f"{job_name}/"), message
        if finishing:
            return
        if not events:
            finishing = not keep_going()  # one more round: the last lines are final now
            if not finishing:
                time.sleep(poll)


def _job_streams(
    call_logs: Callable[[str, dict[str, Any]], dict[str, Any]], job_name: str
) -> list[str]:
    request: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{job_name}/"}
    names: list[str] = []
    while True:
        page = call_logs("DescribeLogStreams", request)
        names += [stream["logStreamName"] for stream in page["logStreams"]]
        if not page.get("nextToken"):
            return names
        request = {**request, "nextToken": page["nextToken"]}


def _new_events(
    call_logs: Callable[[str, dict[str, Any]], dict[str, Any]],
    stream: str,
    tokens: dict[str, str],
) -> Iterator[tuple[int, str, str]]:
    """``(timestamp, stream, message)`` of the stream's events past its token."""
    while True:
        request: dict[str, Any] = {
            "logGroupName": LOG_GROUP,
            "logStreamName": stream,
            "startFromHead": True,
        }
        if stream in tokens:
            request["nextToken"] = tokens[stream]
        page = call_logs("GetLogEvents", request)
        unchanged = page["nextForwardToken"] == tokens.get(stream)
        tokens[stream] = page["nextForwardToken"]
        for event in page["events"]:
            yield event["timestamp"], stream, event["message"]
        if unchanged or not page["events"]:
            return


def _checked(description: dict[str, Any]) -> dict[str, Any]:
    status = description["TransformJobStatus"]
    if status == "Failed":
        name, reason = description["TransformJobName"], description.get("FailureReason", "")
        raise UnexpectedStatusException(
            f"Error for Transform job {name}: Failed. Reason: {reason}",
            allowed_statuses=["Completed", "Stopped"],
            actual_status=status,
        )
    return description


class Transformer:
    """Runs transform jobs for one model, as ``sagemaker.transformer.Transformer`` does.

    Only the arguments that are set go into the request; the service fills the defaults.
    """

    def __init__(
        self,
        model_name: str,
        instance_count: int,
        instance_type: str,
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        accept: str | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: int | None = None,
        tags: list[dict[str, str]] | None = None,
        env: dict[str, str] | None = None,
        base_transform_job_name: str | None = None,
        sagemaker_session: Session | None = None,
        volume_kms_key: str | None = None,
    ) -> None:
        self.model_name = model_name
        self.instance_count = instance_count
        self.instance_type = instance_type
        self.strategy = strategy
        self.assemble_with = assemble_with
        self.output_path = output_path
        self.output_kms_key = output_kms_key
        self.accept = accept
        self.max_concurrent_transforms = max_concurrent_transforms
        self.max_payload = max_payload
        self.tags = tags
        self.env = env
        self.base_transform_job_name = base_transform_job_name
        self.sagemaker_session = sagemaker_session or Session()
        self.volume_kms_key = volume_kms_key
        self._current_job_name: str | None = None
        self.latest_transform_job: str | None = None

    def transform(
        self,
        data: str,
        data_type: str = "S3Prefix",
        content_type: str | None = None,
        compression_type: str | None = None,
        split_type: str | None = None,
        job_name: str | None = None,
        input_filter: str | None = None,
        output_filter: str | None = None,
        join_source: str | None = None,
        experiment_config: dict[str, str] | None = None,
        model_client_config: dict[str, int] | None = None,
        batch_data_capture_config: dict[str, Any] | None = None,
        wait: bool = True,
        logs: bool = True,
    ) -> None:
        """Create a transform job over ``data`` and, with ``wait``, follow it to its end."""
        name = job_name or _name_from_base(self.base_transform_job_name or self.model_name)
        if self.output_path is None:
            raise ValueError("output_path is required: where the .out objects go.")
        request = _compact(
            {
                "TransformJobName": name,
                "ModelName": self.model_name,
                "MaxConcurrentTransforms": self.max_concurrent_transforms,
                "MaxPayloadInMB": self.max_payload,
                "BatchStrategy": self.strategy,
                "Environment": self.env,
                "Tags": self.tags,
                "ModelClientConfig": model_client_config,
                "ExperimentConfig": experiment_config,
                "DataCaptureConfig": batch_data_capture_config,
                "TransformInput": _compact(
                    {
                        "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": data}},
                        "ContentType": content_type,
                        "CompressionType": compression_type,
                        "SplitType": split_type,
                    }
                ),
                "TransformOutput": _compact(
                    {
                        "S3OutputPath": self.output_path,
                        "Accept": self.accept,
                        "AssembleWith": self.assemble_with,
                        "KmsKeyId": self.output_kms_key,
                    }
                ),
                "TransformResources": _compact(
                    {
                        "InstanceType": self.instance_type,
                        "InstanceCount": self.instance_count,
                        "VolumeKmsKeyId": self.volume_kms_key,
                    }
                ),
                "DataProcessing": _compact(
                    {
                        "InputFilter": input_filter,
                        "OutputFilter": output_filter,
                        "JoinSource": join_source,
                    }
                )
                or None,
            }
        )
        self.sagemaker_session.call("CreateTransformJob", request)
        self._current_job_name = self.latest_transform_job = name
        if wait:
            self.wait(logs=logs)

    def wait(self, logs: bool = True) -> None:
        """Block until the latest job ends: stream its logs, or print a mark per poll."""
        name = self._require_job()
        if logs:
            self.sagemaker_session.logs_for_transform_job(name, wait=True)
            return
        for mark in _status_marks(self.sagemaker_session, name):
            print(mark, end="", flush=True)
        print()

    def describe(self) -> dict[str, Any]:
        return self.sagemaker_session.call(
            "DescribeTransformJob", {"TransformJobName": self._require_job()}
        )

    def stop_transform_job(self, wait: bool = True) -> None:
        name = self._require_job()
        self.sagemaker_session.call("StopTransformJob", {"TransformJobName": name})
        if wait:
            self.sagemaker_session.wait_for_transform_job(name, poll=0.5)

    def delete_model(self) -> None:
        self.sagemaker_session.call("DeleteModel", {"ModelName": self.model_name})

    @classmethod
    def attach(
        cls, transform_job_name: str, sagemaker_session: Session | None = None
    ) -> Transformer:
        """A Transformer rebuilt from an existing job's description."""
        session = sagemaker_session or Session()
        job = session.call("DescribeTransformJob", {"TransformJobName": transform_job_name})
        output, resources = job.get("TransformOutput", {}), job["TransformResources"]
        transformer = cls(
            model_name=job["ModelName"],
            instance_count=resources["InstanceCount"],
            instance_type=resources["InstanceType"],
            strategy=job.get("BatchStrategy"),
            assemble_with=output.get("AssembleWith"),
            output_path=output.get("S3OutputPath"),
            output_kms_key=output.get("KmsKeyId"),
            accept=output.get("Accept"),
            max_concurrent_transforms=job.get("MaxConcurrentTransforms"),
            max_payload=job.get("MaxPayloadInMB"),
            env=job.get("Environment"),
            sagemaker_session=session,
        )
        transformer._current_job_name = transformer.latest_transform_job = transform_job_name
        return transformer

    def _require_job(self) -> str:
        if self._current_job_name is None:
            raise ValueError("No transform job yet: call transform() or attach() first.")
        return self._current_job_name


def _status_marks(session: Session, name: str, poll: float = 5.0) -> Iterator[str]:
    """One character per poll, as the SageMaker SDK prints: . _ ! * s."""
    while True:
        description = session.call("DescribeTransformJob", {"TransformJobName": name})
        status = description["TransformJobStatus"]
        yield _STATUS_MARKS.get(status, "?")
        if JobStatus(status).terminal:
            _checked(description)
            return
        time.sleep(poll)


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _name_from_base(base: str) -> str:
    """``<base>-<yyyy-mm-dd-HH-MM-SS-mmm>`` within the 63-character limit, as the SDK does."""
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
    millis = f"{int(time.time() * 1000) % 1000:03d}"
    suffix = f"{stamp}-{millis}"
    return f"{base[: 63 - len(suffix) - 1]}-{suffix}"
