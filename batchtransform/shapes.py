"""Typed views of the SageMaker request documents, and the service-side rules they must keep.

The request as sent is what the store keeps and Describe echoes; the control plane reads it
through these frozen value objects so that defaults and spellings live in one place.
``validation`` checks the documents against botocore's shapes; ``check_*`` below adds the
rules the service applies beyond the shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchtransform.data.capture import format_inference_time
from batchtransform.data.jsonpath import parse_jsonpath
from batchtransform.data.processing import CSV, RecordProcessing, record_format
from batchtransform.errors import NotBuiltError, ValidationError

MAX_PAYLOAD_LIMIT_MB = 100
DEFAULT_STRATEGY = "MultiRecord"
_ENV_STRATEGY = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}
MODEL_ENVIRONMENT_LIMIT_BYTES = 32 * 1024
DEFAULT_INVOCATION_TIMEOUT = 600
DEFAULT_INVOCATION_RETRIES = 3


@dataclass(frozen=True)
class ModelDataSpec:
    """Where a container's model comes from, and the request member that said so.

    ``data_type`` and ``compression`` are ModelDataSource's ``S3DataType`` (``S3Prefix`` or
    ``S3Object``) and ``CompressionType`` (``None`` or ``Gzip``); both are None for a
    ModelDataUrl, which is read by its shape (an archive, a folder, a prefix).
    """

    url: str
    member: str
    data_type: str | None = None
    compression: str | None = None

    @property
    def label(self) -> str:
        """How errors name it: ``PrimaryContainer.ModelDataUrl s3://b/model.tar.gz``."""
        return f"{self.member} {self.url}"

    @classmethod
    def from_container(cls, doc: Mapping[str, Any], path: str) -> ModelDataSpec | None:
        source = (doc.get("ModelDataSource") or {}).get("S3DataSource")
        if source:
            return cls(
                url=source["S3Uri"],
                member=f"{path}.ModelDataSource.S3DataSource.S3Uri",
                data_type=source["S3DataType"],
                compression=source["CompressionType"],
            )
        if doc.get("ModelDataUrl"):
            return cls(url=doc["ModelDataUrl"], member=f"{path}.ModelDataUrl")
        return None


@dataclass(frozen=True)
class ContainerSpec:
    """One ContainerDefinition: an image, its model data and its environment."""

    image: str
    model_data_url: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    hostname: str | None = None
    model_data: ModelDataSpec | None = None

    @classmethod
    def from_request(cls, doc: Mapping[str, Any], path: str = "PrimaryContainer") -> ContainerSpec:
        model_data = ModelDataSpec.from_container(doc, path)
        return cls(
            image=doc.get("Image", ""),
            model_data_url=model_data.url if model_data else None,
            environment=dict(doc.get("Environment") or {}),
            hostname=doc.get("ContainerHostname"),
            model_data=model_data,
        )


@dataclass(frozen=True)
class ModelSpec:
    """A model: one container, or several run in series (an inference pipeline)."""

    name: str
    containers: tuple[ContainerSpec, ...]

    @classmethod
    def from_request(cls, doc: Mapping[str, Any]) -> ModelSpec:
        if doc.get("PrimaryContainer"):
            specs = [ContainerSpec.from_request(doc["PrimaryContainer"])]
        else:
            containers = doc.get("Containers") or []
            specs = [
                ContainerSpec.from_request(c, f"Containers[{i}]") for i, c in enumerate(containers)
            ]
        return cls(doc["ModelName"], tuple(specs))


@dataclass(frozen=True)
class BatchOptions:
    """The three batching knobs; None means "ask the model, then use the default" (§4.1)."""

    strategy: str | None = None
    max_payload_mb: int | None = None
    max_concurrent: int | None = None

    def resolve(self, model: BatchOptions | None) -> BatchOptions:
        """Request value, else the model's /execution-parameters value, else the default."""
        model = model or BatchOptions()
        return BatchOptions(
            strategy=self.strategy or model.strategy or DEFAULT_STRATEGY,
            max_payload_mb=_first_set(self.max_payload_mb, model.max_payload_mb, 6),
            max_concurrent=self.max_concurrent or model.max_concurrent or 1,
        )

    def environment(self) -> dict[str, str]:
        """The SAGEMAKER_* batch variables (§7.3): only for the knobs the caller set."""
        env = {"SAGEMAKER_BATCH": "true"}
        if self.max_payload_mb is not None:
            env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(self.max_payload_mb)
        if self.strategy is not None:
            env["SAGEMAKER_BATCH_STRATEGY"] = _ENV_STRATEGY[self.strategy]
        if self.max_concurrent:
            env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(self.max_concurrent)
        return env

    def describe(self) -> str:
        """The data-log line SageMaker writes once the values are resolved."""
        strategy = _ENV_STRATEGY.get(self.strategy or "", self.strategy)
        return (
            f"MaxConcurrentTransforms={self.max_concurrent}, "
            f"MaxPayloadInMB={self.max_payload_mb}, BatchStrategy={strategy}"
        )


def normalize_strategy(value: str | None) -> str | None:
    """Accept both spellings, ``MultiRecord`` and ``MULTI_RECORD``, in any case."""
    if value is None:
        return None
    key = value.replace("_", "").lower()
    for spelling in _ENV_STRATEGY:
        if spelling.lower() == key:
            return spelling
    raise ValueError(f"Unknown BatchStrategy {value!r}; expected MultiRecord or SingleRecord.")


def _first_set(*values: int | None) -> int:
    return next(v for v in values if v is not None)


@dataclass(frozen=True)
class DataProcessingSpec:
    """DataProcessing with its defaults: send everything, output only the inference."""

    input_filter: str = "$"
    output_filter: str = "$"
    join_source: str = "None"

    @classmethod
    def from_request(cls, doc: Mapping[str, Any]) -> DataProcessingSpec:
        return cls(
            input_filter=doc.get("InputFilter", "$"),
            output_filter=doc.get("OutputFilter", "$"),
            join_source=doc.get("JoinSource") or "None",
        )


@dataclass(frozen=True)
class DataCaptureSpec:
    """DataCaptureConfig: where the capture manifests go, and whether records get ids.

    KmsKeyId is accepted and not used: outputs are not encrypted by us either.
    """

    destination: str
    generate_inference_id: bool = False

    @classmethod
    def from_request(cls, doc: Mapping[str, Any]) -> DataCaptureSpec:
        return cls(
            destination=doc["DestinationS3Uri"],
            generate_inference_id=bool(doc.get("GenerateInferenceId")),
        )


@dataclass(frozen=True)
class TransformJobSpec:
    """What a job does, read from a CreateTransformJob document with defaults applied.

    ``creation_time`` (epoch seconds) is the job's time for GenerateInferenceId and the
    capture folders: fixed before any instance starts, so every instance writes the same.
    """

    name: str
    model_name: str
    input_uri: str
    data_type: str = "S3Prefix"
    content_type: str | None = None
    compression: str = "None"
    split_type: str = "None"
    output_path: str = ""
    accept: str | None = None
    assemble_with: str = "None"
    output_kms_key: str | None = None
    instance_type: str = "local"
    instance_count: int = 1
    batch: BatchOptions = BatchOptions()
    invocation_timeout: int = DEFAULT_INVOCATION_TIMEOUT
    invocation_retries: int = DEFAULT_INVOCATION_RETRIES
    environment: Mapping[str, str] = field(default_factory=dict)
    processing: DataProcessingSpec = DataProcessingSpec()
    capture: DataCaptureSpec | None = None
    creation_time: float = 0.0

    def record_processing(self) -> RecordProcessing | None:
        """The per-record work for the data pipeline; None when there is none to do."""
        ids = self.capture is not None and self.capture.generate_inference_id
        work = RecordProcessing(
            content_type=self.content_type,
            accept=self.accept,
            input_filter=self.processing.input_filter,
            output_filter=self.processing.output_filter,
            join_source=self.processing.join_source,
            inference_time=format_inference_time(self.creation_time) if ids else None,
        )
        return work if work.filters_input or work.processes_output else None

    def container_environment(self, container: ContainerSpec) -> dict[str, str]:
        """The model's Environment, then the batch variables, then the job's Environment."""
        return {**container.environment, **self.batch.environment(), **self.environment}

    @classmethod
    def from_request(cls, doc: Mapping[str, Any], creation_time: float = 0.0) -> TransformJobSpec:
        source = doc["TransformInput"]["DataSource"]["S3DataSource"]
        inp, out = doc["TransformInput"], doc["TransformOutput"]
        resources = doc["TransformResources"]
        client = doc.get("ModelClientConfig") or {}
        return cls(
            name=doc["TransformJobName"],
            model_name=doc["ModelName"],
            input_uri=source["S3Uri"],
            data_type=source.get("S3DataType", "S3Prefix"),
            content_type=inp.get("ContentType"),
            compression=inp.get("CompressionType") or "None",
            split_type=inp.get("SplitType") or "None",
            output_path=out["S3OutputPath"],
            accept=out.get("Accept"),
            assemble_with=out.get("AssembleWith") or "None",
            output_kms_key=out.get("KmsKeyId"),
            instance_type=resources["InstanceType"],
            instance_count=resources["InstanceCount"],
            batch=BatchOptions(
                strategy=doc.get("BatchStrategy"),
                max_payload_mb=doc.get("MaxPayloadInMB"),
                max_concurrent=doc.get("MaxConcurrentTransforms") or None,
            ),
            invocation_timeout=client.get(
                "InvocationsTimeoutInSeconds", DEFAULT_INVOCATION_TIMEOUT
            ),
            invocation_retries=client.get("InvocationsMaxRetries", DEFAULT_INVOCATION_RETRIES),
            environment=dict(doc.get("Environment") or {}),
            processing=DataProcessingSpec.from_request(doc.get("DataProcessing") or {}),
            capture=(
                DataCaptureSpec.from_request(doc["DataCaptureConfig"])
                if doc.get("DataCaptureConfig")
                else None
            ),
            creation_time=creation_time,
        )


def check_model_rules(doc: Mapping[str, Any]) -> None:
    """Rules CreateModel applies beyond the shape."""
    primary, containers = doc.get("PrimaryContainer"), doc.get("Containers")
    if not primary and not containers:
        raise ValidationError("A model needs PrimaryContainer or Containers.", "PrimaryContainer")
    if primary and containers:
        raise ValidationError("Give PrimaryContainer or Containers, not both.", "Containers")
    mode = (doc.get("InferenceExecutionConfig") or {}).get("Mode", "Serial")
    if containers and len(containers) > 1 and mode != "Serial":
        raise NotBuiltError(
            f"InferenceExecutionConfig.Mode={mode}: batch transform runs the Containers of "
            "an inference pipeline in series; Mode Direct is not built."
        )
    for index, container in enumerate([primary] if primary else containers or []):
        path = "PrimaryContainer" if primary else f"Containers[{index}]"
        _check_container(container, path)


def _check_container(container: Mapping[str, Any], path: str) -> None:
    if not container.get("Image"):
        raise ValidationError(f"{path}.Image is required.", f"{path}.Image")
    if container.get("ModelDataSource") is not None:
        _check_model_data_source(container, path)
    env = container.get("Environment") or {}
    size = sum(len(k) + len(v) for k, v in env.items())
    if size > MODEL_ENVIRONMENT_LIMIT_BYTES:
        raise ValidationError(
            f"{path}.Environment holds {size} bytes; the limit for all entries together "
            f"is {MODEL_ENVIRONMENT_LIMIT_BYTES} bytes (32 KB).",
            f"{path}.Environment",
        )


def _check_model_data_source(container: Mapping[str, Any], path: str) -> None:
    """SageMaker's rules for ModelDataSource, documented beside its members."""
    member = f"{path}.ModelDataSource"
    if container.get("ModelDataUrl"):
        raise ValidationError(f"{path}: give ModelDataUrl or ModelDataSource, not both.", member)
    source = container["ModelDataSource"].get("S3DataSource")
    if not source:
        raise ValidationError(f"{member}.S3DataSource is required.", f"{member}.S3DataSource")
    member += ".S3DataSource"
    for name in ("ManifestS3Uri", "HubAccessConfig"):
        if source.get(name) is not None:
            raise NotBuiltError(
                f"{member}.{name}: model data from a manifest or a SageMaker hub is not "
                "built; name the model files with S3Uri."
            )
    data_type, compression, uri = source["S3DataType"], source["CompressionType"], source["S3Uri"]
    if data_type == "S3Prefix" and compression != "None":
        raise ValidationError(
            f"{member}.CompressionType is {compression}; with S3DataType S3Prefix it must be "
            "None (every object under the prefix is a file of the model). A model.tar.gz is "
            "S3DataType S3Object with CompressionType Gzip.",
            f"{member}.CompressionType",
        )
    if data_type == "S3Prefix" and not uri.endswith("/"):
        raise ValidationError(
            f"{member}.S3Uri {uri!r} must end with '/' when S3DataType is S3Prefix (a key "
            "name prefix, as SageMaker requires).",
            f"{member}.S3Uri",
        )
    if data_type == "S3Object" and uri.endswith("/"):
        raise ValidationError(
            f"{member}.S3Uri {uri!r} ends with '/', but S3DataType S3Object names one object; "
            "use S3Prefix for a prefix.",
            f"{member}.S3Uri",
        )


def check_transform_job_rules(doc: Mapping[str, Any]) -> None:
    """Rules CreateTransformJob applies beyond the shape, and features not built yet."""
    _check_payload_limits(doc)
    source = doc["TransformInput"]["DataSource"]["S3DataSource"]
    data_type = source["S3DataType"]
    if data_type in ("AugmentedManifestFile", "Converse"):
        raise ValidationError(
            f"S3DataType {data_type} is not supported for transform jobs; use S3Prefix or "
            "ManifestFile.",
            "TransformInput.DataSource.S3DataSource.S3DataType",
        )
    _check_record_processing(TransformJobSpec.from_request(doc))


def _check_payload_limits(doc: Mapping[str, Any]) -> None:
    payload = doc.get("MaxPayloadInMB")
    concurrent = doc.get("MaxConcurrentTransforms")
    if payload is not None and payload > MAX_PAYLOAD_LIMIT_MB:
        raise ValidationError(
            f"MaxPayloadInMB is {payload}; it must be at most {MAX_PAYLOAD_LIMIT_MB}.",
            "MaxPayloadInMB",
        )
    if payload and concurrent and payload * concurrent > MAX_PAYLOAD_LIMIT_MB:
        raise ValidationError(
            f"MaxConcurrentTransforms ({concurrent}) x MaxPayloadInMB ({payload}) = "
            f"{concurrent * payload}; the product must be at most {MAX_PAYLOAD_LIMIT_MB}.",
            "MaxConcurrentTransforms",
        )


def _check_record_processing(job: TransformJobSpec) -> None:
    """DataProcessing and GenerateInferenceId rules, checked before the job is recorded.

    Our reading of reference §5.1 and §6.5 (the service's own checks are unconfirmed):

    * each filter parses as the supported JSONPath subset (``data.jsonpath``);
    * records are parsed only as ``text/csv``, ``application/json`` or
      ``application/jsonlines``: ContentType must be one of them for an InputFilter or a
      join, Accept for an OutputFilter, a join or inference ids;
    * a join needs ContentType and Accept of the same format (both CSV, or both JSON), as
      the SDK documents, since the joined record is written in that format;
    * a CSV record is an array of strings, so a filter over CSV may not select by name;
    * records are lines or whole objects: SplitType must be None or Line, and Line when
      CSV is involved, where AssembleWith must be Line too (a row per line, as the docs
      require for ``text/csv``).
    """
    work = job.record_processing()
    if work is None:
        return
    _check_filter(job.processing.input_filter, "InputFilter", job.content_type)
    _check_filter(job.processing.output_filter, "OutputFilter", job.accept)
    if work.filters_input or work.joins:
        _check_format(job.content_type, "TransformInput.ContentType")
    if work.processes_output:
        _check_format(job.accept, "TransformOutput.Accept")
    if work.joins and record_format(job.content_type) != record_format(job.accept):
        raise ValidationError(
            f"JoinSource=Input needs ContentType ({job.content_type}) and Accept "
            f"({job.accept}) of the same format, both CSV or both JSON: the joined record "
            "is written in that format.",
            "TransformOutput.Accept",
        )
    _check_splitting(job, work)


def _check_filter(expression: str, member: str, content_type: str | None) -> None:
    path = f"DataProcessing.{member}"
    try:
        parsed = parse_jsonpath(expression)
    except ValueError as exc:
        raise ValidationError(f"{path}: {exc}", path) from None
    if parsed.uses_names and record_format(content_type) == CSV:
        raise ValidationError(
            f"{path}: {expression} selects by name, but a text/csv record is an array of "
            "strings; use index paths such as $[0], $[1:] or $[0,-1].",
            path,
        )


def _check_format(content_type: str | None, path: str) -> None:
    if record_format(content_type) is None:
        raise ValidationError(
            f"{path} is {content_type!r}; data processing and inference ids work on "
            "records of text/csv, application/json or application/jsonlines.",
            path,
        )


def _check_splitting(job: TransformJobSpec, work: RecordProcessing) -> None:
    if job.split_type not in ("None", "Line"):
        raise ValidationError(
            f"SplitType {job.split_type} cannot be combined with DataProcessing or "
            "GenerateInferenceId, which work on CSV and JSON records; use Line or None.",
            "TransformInput.SplitType",
        )
    csv_in = (work.filters_input or work.joins) and record_format(job.content_type) == CSV
    csv_out = work.processes_output and record_format(job.accept) == CSV
    if (csv_in or csv_out) and (job.split_type, job.assemble_with) != ("Line", "Line"):
        raise ValidationError(
            "Processing text/csv records needs SplitType=Line and AssembleWith=Line (a "
            f"record is a row); this job has SplitType={job.split_type} and "
            f"AssembleWith={job.assemble_with}.",
            "TransformInput.SplitType"
            if job.split_type != "Line"
            else "TransformOutput.AssembleWith",
        )
