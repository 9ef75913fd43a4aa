"""GenerateInferenceId: an id and a time on every output record (reference §6.5).

SageMaker adds a random UUID and the job's time (``YYYY-MM-DDTHH:MM:SSZ``): as two trailing
columns of a CSV record, and as the members ``SageMakerInferenceId`` and
``SageMakerInferenceTime`` of a JSON object. A JSON record that is not an object (a number,
an array) has nowhere to put members, so we wrap it as ``{"SageMakerOutput": <record>,
...}``, the name a joined record uses for the model's output (our choice; unconfirmed).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

__all__ = ["format_inference_time", "with_inference_id"]


def format_inference_time(epoch_seconds: float) -> str:
    """The time as GenerateInferenceId writes it, in UTC: ``2022-08-30T00:49:15Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))


def with_inference_id(record: Any, csv: bool, inference_time: str) -> Any:
    """``record`` (CSV fields, a field, or a JSON value) with a new id and ``inference_time``."""
    inference_id = str(uuid.uuid4())
    if csv:
        fields = record if isinstance(record, list) else [record]
        return [*fields, inference_id, inference_time]
    members = {"SageMakerInferenceId": inference_id, "SageMakerInferenceTime": inference_time}
    if isinstance(record, dict):
        return {**record, **members}
    return {"SageMakerOutput": record, **members}
