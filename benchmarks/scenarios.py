"""The scenarios, each measured on the same data in the same run.

(a) direct pandas + model, the baseline every ratio refers to; (b) batchtransform, one
instance, and the same with one numeric thread; (c) two instances over several files; (d)
through the process runtime; (e) an identity model, as a job and as the pipeline alone,
against reading (and copying) the bytes raw; (f) Ray Data, when installed; (g) (b) with
its data on S3, when SeaweedFS is installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import itertools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchtransform import Session
from batchtransform.executors.base import THREAD_VARIABLES
from benchmarks import model_server
from benchmarks.measure import (
    Measurement,
    Sampler,
    raw_copy_seconds,
    raw_read_seconds,
    run_program,
)


@dataclass(frozen=True)
class Result:
    name: str
    rows: int
    input_bytes: int
    measurement: Measurement | None
    note: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.measurement.seconds if self.measurement else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.input_bytes / 1e6 / self.measurement.seconds if self.measurement else 0.0


@dataclass(frozen=True)
class Workload:
    """The data and models of one run."""

    work: Path
    files: list[Path]  # several files
    single: list[Path]  # the same rows as one file
    rows: int
    model_file: Path
    model_archive: Path
    identity_archive: Path

    @property
    def input_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)


_counter = itertools.count()
PAYLOAD_MB = 6  # MaxPayloadInMB of every job, and of the identity pipeline alone


def direct(load: Workload) -> Result:
    command = [sys.executable, "-m", "benchmarks.direct", str(load.model_file)]
    output = load.work / "out-direct"
    measurement = run_program([*command, str(output), *map(str, load.single)])
    return Result("(a) direct: pandas chunks + model", load.rows, load.input_bytes, measurement)


def job(
    load: Workload,
    name: str,
    inputs: list[Path],
    archive: Path,
    instances: int = 1,
    image: str = "batchtransform/python",
    environment: dict[str, str] | None = None,
    source: str | None = None,
    output_url: str | None = None,
) -> Result:
    """A real job on the embedded default (detached controller, instance processes).

    ``source`` and ``output_url`` put the input and output elsewhere than the local
    ``inputs`` and a local folder (S3); the first output byte is seen only locally.
    """
    session = Session()
    tag = f"bench-{next(_counter)}-{int(time.time())}"
    session.create_model(
        ModelName=tag, PrimaryContainer={"Image": image, "ModelDataUrl": archive.as_uri()}
    )
    if source is None:
        source = str(inputs[0].parent / "" if len(inputs) > 1 else inputs[0])
    output = load.work / f"out-{tag}"
    request = _job_request(tag, source, output_url or str(output), instances)
    if environment:
        request["Environment"] = environment
    with Sampler(output, lambda: _controller_pid(session, tag)) as sampler:
        session.create_transform_job(**request)
        session.wait_for_transform_job(tag, poll=0.05)  # raises unless it completed
    return Result(name, load.rows, load.input_bytes, sampler.result)


def _job_request(name: str, source: str, output: str, instances: int) -> dict[str, Any]:
    return {
        "TransformJobName": name,
        "ModelName": name,
        "MaxPayloadInMB": PAYLOAD_MB,
        "BatchStrategy": "MultiRecord",
        "MaxConcurrentTransforms": 1,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "local", "InstanceCount": instances},
    }


def _controller_pid(session: Session, name: str) -> int | None:
    record = session.service.store.get_job(name)
    return record.controller_pid if record else None


def process_runtime(load: Workload) -> Result:
    """(b) with the model behind HTTP: a model-server program run by the process runtime."""
    launcher = model_server.write_launcher(load.work)
    name = "(d) process runtime (HTTP hop), 1 instance"
    return job(load, name, load.single, load.model_archive, image=f"process://{launcher}")


def one_thread(load: Workload) -> Result:
    """(b) with one numeric thread, set in the job's Environment as a user would set it."""
    single = {name: "1" for name in THREAD_VARIABLES}
    name = "(b1) as (b), OMP_NUM_THREADS=1 in the job's Environment"
    return job(load, name, load.single, load.model_archive, environment=single)


def identity_and_raw(load: Workload) -> list[Result]:
    """The identity model as a job and as the pipeline alone, and the raw read and copy."""
    raw = Measurement(seconds=raw_read_seconds(load.single))
    copy = Measurement(seconds=raw_copy_seconds(load.single, load.work / "raw-copy"))
    return [
        job(load, "(e) identity model, 1 instance", load.single, load.identity_archive),
        identity_pipeline(load),
        Result("(e) raw read of the same bytes", load.rows, load.input_bytes, raw),
        Result("(e) raw copy (read + write)", load.rows, load.input_bytes, copy),
    ]


def identity_pipeline(load: Workload) -> Result:
    """The identity job's pipeline run in this process: read, cut batches, call the handler
    through the python runtime, assemble, write; no process or model start (and none of
    the malloc settings an instance starts with)."""
    from batchtransform import objects
    from batchtransform.data.pipeline import PipelineSettings, transform_stream
    from batchtransform.runtimes import RuntimeContext, create_runtime

    model_dir = load.identity_archive.parent / "staging"
    runtime = create_runtime(RuntimeContext(image="batchtransform/python", model_dir=model_dir))
    runtime.start()
    settings = PipelineSettings(
        split_type="Line",
        batch_strategy="MultiRecord",
        max_payload_bytes=PAYLOAD_MB << 20,
        assemble_with="Line",
    )
    source = str(load.single[0])
    started = time.perf_counter()
    with objects.atomic_writer(str(load.work / "out-pipeline" / "identity.out")) as output:
        chunks = objects.iter_chunks(source)
        for chunk in transform_stream(
            chunks, settings, lambda b: runtime.invoke(b.payload, "text/csv", "text/csv")
        ):
            output.write(chunk)
    seconds = time.perf_counter() - started
    runtime.stop()
    name = "(e) identity, the pipeline alone (in-process)"
    return Result(name, load.rows, load.input_bytes, Measurement(seconds=seconds))


def start_latency(load: Workload) -> Result:
    """Create → first output byte, for a one-line input."""
    tiny = load.work / "tiny" / "one.csv"
    tiny.parent.mkdir(parents=True, exist_ok=True)
    tiny.write_text(load.single[0].open().readline())
    result = job(load, "start latency (create → first output byte)", [tiny], load.model_archive)
    return Result(result.name, 1, tiny.stat().st_size, result.measurement)


def on_s3(load: Workload) -> Result:
    """(b) with its input and output on S3: a SeaweedFS on this machine, started the way the
    tests start theirs (``tests/s3servers.py``), when its ``weed`` binary is installed."""
    name = "(g) as (b), input and output on S3 (a local SeaweedFS)"
    if shutil.which("weed", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}") is None:
        return Result(name, load.rows, load.input_bytes, None, "SeaweedFS not installed")
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from s3servers import running_seaweed

    with running_seaweed(Path(tempfile.mkdtemp(dir=load.work))) as server:
        bucket = server.make_bucket()
        server.client().upload_file(str(load.single[0]), bucket, f"in/{load.single[0].name}")
        with _s3_settings(server.endpoint_url, server.access_key, server.secret_key):
            result = job(
                load,
                name,
                load.single,
                load.model_archive,
                source=f"s3://{bucket}/in/{load.single[0].name}",
                output_url=f"s3://{bucket}/out/",
            )
    note = "the S3 server shares the machine's cores"
    return dataclasses.replace(result, note=note)


@contextlib.contextmanager
def _s3_settings(endpoint: str, key: str, secret: str) -> Iterator[None]:
    """AWS's standard variables, for this process and the job's, pointed at ``endpoint``."""
    settings = {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def ray_data(load: Workload) -> Result:
    name = "(f) Ray Data map_batches, 8 files"
    if importlib.util.find_spec("ray") is None:
        return Result(name, load.rows, load.input_bytes, None, "ray not installed")
    command = [sys.executable, "-m", "benchmarks.ray_peer", str(load.model_file)]
    output = load.work / "out-ray"
    measurement = run_program([*command, str(output), *map(str, load.files)])
    return Result(name, load.rows, load.input_bytes, measurement, "peak: the driver only")
