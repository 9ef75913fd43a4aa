"""Manifests: ManifestFile input (reference §3.2) and the data-capture manifests (§6.5).

One JSON format both ways: an array whose first element is ``{"prefix": URL}`` and whose
other elements are key suffixes; each object is ``prefix + suffix``, with no separator
logic. Our choices where the reference is unsure:

* **ManifestFile outputs** are named by the suffix: ``sub/part-1.csv`` writes
  ``<S3OutputPath>/sub/part-1.csv.out``. Two entries naming the same output (a repeated
  entry) fail the job at plan time; an entry with a ``..`` segment is refused, since it
  would write outside S3OutputPath. An entry whose object does not exist fails that
  object when it is read (the job goes on and ends Failed), so planning costs no request
  per entry.
* **Capture manifests** go to ``<DestinationS3Uri>/input/yyyy/mm/dd/hh/<job>.manifest``
  and ``.../output/...``, the hour being the job's CreationTime in UTC (the same time
  GenerateInferenceId writes). They are written when the job's work is over, before it
  ends: the input manifest lists every input object (prefix: the deepest folder holding
  them all), the output manifest every output written (prefix: S3OutputPath).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

from batchtransform import objects
from batchtransform.errors import ValidationError
from batchtransform.objects import ObjectInfo
from batchtransform.plan import WorkItem
from batchtransform.shapes import TransformJobSpec

__all__ = ["list_manifest", "manifest_document", "parse_manifest", "write_capture"]

_SOURCE = "TransformInput.DataSource.S3DataSource.S3Uri"


def list_manifest(url: str) -> list[ObjectInfo]:
    """The input objects the ManifestFile at ``url`` lists, in its order.

    ``relative`` is the suffix; sizes are not looked up (nothing needs them before the
    object is read). A missing or malformed manifest raises ValidationError.
    """
    try:
        data = objects.read_bytes(url)
    except FileNotFoundError:
        raise ValidationError(f"The ManifestFile {url} does not exist.", _SOURCE) from None
    prefix, suffixes = parse_manifest(data, url)
    return [ObjectInfo(prefix + suffix, prefix + suffix, suffix, 0) for suffix in suffixes]


def parse_manifest(data: bytes, url: str) -> tuple[str, list[str]]:
    """The prefix and the suffixes of a manifest document; ValidationError says what is wrong."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise _invalid(url, f"it is not valid JSON ({exc})") from None
    if not isinstance(document, list) or not document or not _is_prefix(document[0]):
        raise _invalid(url, 'it must be a JSON array whose first element is {"prefix": "..."}')
    for position, entry in enumerate(document[1:], start=2):
        _check_entry(entry, position, url)
    return document[0]["prefix"], document[1:]


def _is_prefix(element: Any) -> bool:
    return isinstance(element, dict) and isinstance(element.get("prefix"), str)


def _check_entry(entry: Any, position: int, url: str) -> None:
    if not isinstance(entry, str) or not entry:
        raise _invalid(url, f"element {position} ({entry!r}) is not a key suffix string")
    if ".." in entry.split("/"):
        raise _invalid(
            url,
            f"element {position} ({entry!r}) has a '..' segment; outputs must stay under "
            "S3OutputPath",
        )


def _invalid(url: str, reason: str) -> ValidationError:
    return ValidationError(f"The ManifestFile {url} is not a valid manifest: {reason}.", _SOURCE)


def manifest_document(prefix: str, suffixes: Sequence[str]) -> bytes:
    """A manifest in the format ManifestFile reads."""
    return json.dumps([{"prefix": prefix}, *suffixes]).encode("utf-8")


def write_capture(
    job: TransformJobSpec, planned: Sequence[WorkItem], completed: Sequence[WorkItem]
) -> None:
    """Write the job's input and output capture manifests, if it has DataCaptureConfig.

    Raises StorageError if the destination cannot be written.
    """
    if job.capture is None or not planned:
        return
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(job.creation_time))
    base = job.capture.destination.rstrip("/")
    name = f"{job.name}.manifest"
    inputs = [item.input_url for item in planned]
    input_prefix = _common_folder(inputs)
    output_prefix = job.output_path.rstrip("/") + "/"
    outputs = [item.output_url for item in sorted(completed, key=lambda item: item.index)]
    objects.write_bytes(
        f"{base}/input/{hour}/{name}",
        manifest_document(input_prefix, _suffixes(inputs, input_prefix)),
    )
    objects.write_bytes(
        f"{base}/output/{hour}/{name}",
        manifest_document(output_prefix, _suffixes(outputs, output_prefix)),
    )


def _common_folder(urls: Sequence[str]) -> str:
    """The longest prefix of every URL that ends with ``/``: their deepest shared folder."""
    # URLs, not paths (commonpath would fold s3:// to s3:/): cut back to the last '/'.
    common = os.path.commonprefix(list(urls))  # noqa: RUF071
    return common[: common.rfind("/") + 1]


def _suffixes(urls: Sequence[str], prefix: str) -> list[str]:
    return [url[len(prefix) :] for url in urls]
