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

from batchtransform.errors import NotBuiltError, ValidationError

MAX_PAYLOAD_LIMIT_MB = 100
DEFAULT_STRATEGY = "MultiRecord"
_ENV_STRATEGY = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}
MODEL_ENVIRONMENT_LIMIT_BYTES = 32 * 1024
DEFAULT_INVOCATION_TIMEOUT = 600
DEFAULT_INVOCATION_RETRIES = 3


@dataclass(frozen=True)
class ContainerSpec:
    """One ContainerDefinition: an image, its model data and its environment."""

    image: str
    model_data_url: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    hostname: str | None = None

    @classmethod
    def from_request(cls, doc: Mapping[str, Any]) -> ContainerSpec:
        return cls(
            image=doc.get("Image", ""),
            model_data_url=doc.get("ModelDataUrl"),
            environment=dict(doc.get("Environment") or {}),
            hostname=doc.get("ContainerHostname"),
        )


@dataclass(frozen=True)
class ModelSpec:
    """A model: one container, or several run in series (an inference pipeline)."""

    name: str
    containers: tuple[ContainerSpec, ...]

    @classmethod
    def from_request(cls, doc: Mapping[str, Any]) -> ModelSpec:
        if doc.get("PrimaryContainer"):
            containers = [doc["PrimaryContainer"]]
        else:
            containers = list(doc.get("Containers") or [])
        return cls(doc["ModelName"], tuple(ContainerSpec.from_request(c) for c in containers))


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
class TransformJobSpec:
    """What a job does, read from a CreateTransformJob document with defaults applied."""

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
    instance_type: str = "local"
    instance_count: int = 1
    batch: BatchOptions = BatchOptions()
    invocation_timeout: int = DEFAULT_INVOCATION_TIMEOUT
    invocation_retries: int = DEFAULT_INVOCATION_RETRIES
    environment: Mapping[str, str] = field(default_factory=dict)

    def container_environment(self, container: ContainerSpec) -> dict[str, str]:
        """The model's Environment, then the batch variables, then the job's Environment."""
        return {**container.environment, **self.batch.environment(), **self.environment}

    @classmethod
    def from_request(cls, doc: Mapping[str, Any]) -> TransformJobSpec:
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
        )


def check_model_rules(doc: Mapping[str, Any]) -> None:
    """Rules CreateModel applies beyond the shape."""
    primary, containers = doc.get("PrimaryContainer"), doc.get("Containers")
    if not primary and not containers:
        raise ValidationError("A model needs PrimaryContainer or Containers.", "PrimaryContainer")
    if primary and containers:
        raise ValidationError("Give PrimaryContainer or Containers, not both.", "Containers")
    if containers and len(containers) > 1:
        raise NotBuiltError(
            "Containers: inference pipelines (more than one container) are not built yet; "
            "use PrimaryContainer."
        )
    for index, container in enumerate([primary] if primary else containers or []):
        path = "PrimaryContainer" if primary else f"Containers[{index}]"
        _check_container(container, path)


def _check_container(container: Mapping[str, Any], path: str) -> None:
    if not container.get("Image"):
        raise ValidationError(f"{path}.Image is required.", f"{path}.Image")
    env = container.get("Environment") or {}
    size = sum(len(k) + len(v) for k, v in env.items())
    if size > MODEL_ENVIRONMENT_LIMIT_BYTES:
        raise ValidationError(
            f"{path}.Environment holds {size} bytes; the limit for all entries together "
            f"is {MODEL_ENVIRONMENT_LIMIT_BYTES} bytes (32 KB).",
            f"{path}.Environment",
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
    _not_built_yet(doc)


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


def _not_built_yet(doc: Mapping[str, Any]) -> None:
    """Refuse, at create time and by name, what a later release builds."""
    source = doc["TransformInput"]["DataSource"]["S3DataSource"]
    split = doc["TransformInput"].get("SplitType")
    processing = doc.get("DataProcessing") or {}
    unbuilt = {
        "TransformInput.DataSource.S3DataSource.S3DataType=ManifestFile": (
            source["S3DataType"] == "ManifestFile"
        ),
        f"TransformInput.SplitType={split}": split in ("RecordIO", "TFRecord"),
        "DataProcessing (InputFilter, OutputFilter, JoinSource)": (
            processing.get("InputFilter", "$") != "$"
            or processing.get("OutputFilter", "$") != "$"
            or processing.get("JoinSource", "None") != "None"
        ),
        "DataCaptureConfig": bool(doc.get("DataCaptureConfig")),
    }
    for feature, used in unbuilt.items():
        if used:
            raise NotBuiltError(f"{feature} is not built yet in batchtransform.")
