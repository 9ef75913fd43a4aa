"""The scenarios of ranges and of many small objects, measured in the same run as the rest.

(j) one file on 2 instances, its ranges shared out, against (b), the same file on one;
(b0) (b) with ranges off, so that (b) / (b0) is what ranges cost a one-instance job; (b/10)
(b) on a tenth of the rows, whose peak memory shows whether an instance's memory grows
with its object; (k) many small objects on S3 (a local SeaweedFS) through 2 instances and
the identity model, against (k0) a plain boto3 GET and PUT of the same objects on two
threads.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks import scenarios
from benchmarks.measure import Measurement
from benchmarks.scenarios import Result, Workload

RANGES_OFF = {"BATCHTRANSFORM_RANGE_SIZE_MB": "0"}
SMALL_OBJECTS = 1000
SMALL_OBJECTS_SMOKE = 20
SMALL_OBJECT_ROWS = 10  # about 1 KB of CSV each


def one_file_two_instances(load: Workload) -> Result:
    name = "(j) one file, 2 instances (its ranges shared out)"
    return scenarios.job(load, name, load.single, load.model_archive, instances=2)


def ranges_off(load: Workload) -> Result:
    name = "(b0) as (b), ranges off (BATCHTRANSFORM_RANGE_SIZE_MB=0)"
    return scenarios.job(load, name, load.single, load.model_archive, environment=RANGES_OFF)


def tenth(load: Workload) -> Result:
    """(b) on the first tenth of the rows, for its peak memory."""
    source = load.single[0]
    small = load.work / "tenth" / source.name
    if not small.exists():
        small.parent.mkdir(parents=True, exist_ok=True)
        with source.open("rb") as whole, small.open("wb") as part:
            part.writelines(line for _, line in zip(range(load.rows // 10), whole, strict=False))
    result = scenarios.job(load, "(b/10) as (b), a tenth of the rows", [small], load.model_archive)
    return dataclasses.replace(result, rows=load.rows // 10, input_bytes=small.stat().st_size)


def small_objects(load: Workload, count: int) -> list[Result]:
    """(k0) boto3 GET + PUT on two threads, then (k) the job, over the same ``count``
    objects on one SeaweedFS; their rows count objects."""
    names = ["(k0) boto3 GET + PUT of small objects, 2 threads", "(k) small objects, 2 instances"]
    if shutil.which("weed", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}") is None:
        return [Result(name, count, 0, None, "SeaweedFS not installed") for name in names]
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from s3servers import running_seaweed

    body = b"".join(load.single[0].open("rb").readlines()[1 : 1 + SMALL_OBJECT_ROWS])
    note = f"{count} objects of {len(body)} bytes; rows/s counts objects"
    with running_seaweed(Path(tempfile.mkdtemp(dir=load.work))) as server:
        client = server.client()
        bucket = server.make_bucket()
        keys = [f"small/{n:05d}.csv" for n in range(count)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=body), keys))
        plain = Measurement(seconds=_get_and_put(client, bucket, keys))
        with scenarios._s3_settings(server.endpoint_url, server.access_key, server.secret_key):
            job = scenarios.job(
                load,
                names[1],
                [],
                load.identity_archive,
                instances=2,
                source=f"s3://{bucket}/small/",
                output_url=f"s3://{bucket}/out/",
            )
    size = count * len(body)
    return [
        Result(names[0], count, size, plain, note),
        dataclasses.replace(job, rows=count, input_bytes=size, note=note),
    ]


def _get_and_put(client: Any, bucket: str, keys: list[str]) -> float:
    """Seconds for two threads to GET each object and PUT it back under ``copy/``."""

    def copy(key: str) -> None:
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        client.put_object(Bucket=bucket, Key=f"copy/{key}", Body=data)

    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(copy, keys))
    return time.perf_counter() - started
