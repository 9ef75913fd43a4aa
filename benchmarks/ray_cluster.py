"""The Ray rows: the Ray executor on a running Ray cluster of this machine, against the
local executor's (b) and (c), and Ray Data's ``map_batches`` with an actor pool on the
same cluster as the peer; the same on two nodes; and the start latency, on a running
cluster and with a Ray started for the job.

Ray binds to every interface, so its clusters run in a private network namespace (as the
tests run theirs, with ``tests/executors/raycluster.py``), which needs root; elsewhere the
rows say so. A cluster's processes are not under the job's controller, so their cores and
memory are not in the "cores busy" and "peak" columns (the controller's only).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.measure import run_program
from benchmarks.scenarios import Result, Workload, job

ONE_NODE = "(h) Ray executor, 1 instance, one file, a running cluster"
TWO_INSTANCES = "(h2) Ray executor, 2 instances, 8 files"
RAY_DATA = "(f2) Ray Data map_batches, actor pool, 8 files, the same cluster"
TWO_NODES = "(i) Ray executor, 2 nodes, 2 instances, 8 files"
START_RUNNING = "start latency, Ray executor on a running cluster"
START_LOCAL = "start latency, Ray executor with a Ray started for the job"
NAMES = (ONE_NODE, START_RUNNING, TWO_INSTANCES, RAY_DATA, TWO_NODES, START_LOCAL)
_NOTE = "controller only"


def ray_rows(load: Workload) -> list[Result]:
    """Every Ray row; rows that cannot run here say why."""
    why = _cannot_run()
    if why:
        return [Result(name, load.rows, load.input_bytes, None, why) for name in NAMES]
    cores = os.cpu_count() or 1
    results = []
    with _cluster(load.work / "ray-1", {"cpus": cores, "memory_gib": 64}), _executor("ray"):
        results.append(_noted(job(load, ONE_NODE, load.single, load.model_archive)))
        # before Ray Data, whose own workers the cluster is still ending for a while after
        results.append(_start_latency(load, START_RUNNING))
        results.append(
            _noted(job(load, TWO_INSTANCES, load.files, load.model_archive, instances=2))
        )
        results.append(_ray_data(load))
    half = {"cpus": max(1, cores // 2), "memory_gib": 32}
    with _cluster(load.work / "ray-2", half, half), _executor("ray"):
        results.append(_noted(job(load, TWO_NODES, load.files, load.model_archive, instances=2)))
    with _private_network(), _executor("ray"):
        results.append(_start_latency(load, START_LOCAL))
    return results


def _cannot_run() -> str:
    if importlib.util.find_spec("ray") is None:
        return "ray not installed"
    if os.geteuid() != 0:
        return "not run: Ray's private network namespace needs root"
    return ""


def _noted(result: Result) -> Result:
    return dataclasses.replace(result, note=_NOTE)


def _ray_data(load: Workload) -> Result:
    """The Ray Data peer, joining the running cluster (``RAY_ADDRESS``)."""
    command = [sys.executable, "-m", "benchmarks.ray_peer", str(load.model_file)]
    output = load.work / "out-ray-cluster"
    measurement = run_program([*command, str(output), *map(str, load.files)])
    return Result(RAY_DATA, load.rows, load.input_bytes, measurement, "peak: the driver only")


def _start_latency(load: Workload, name: str) -> Result:
    """Create → first output byte, for a one-line input, as ``scenarios.start_latency``."""
    tiny = load.work / "tiny-ray" / "one.csv"
    tiny.parent.mkdir(parents=True, exist_ok=True)
    tiny.write_text(load.single[0].open().readline())
    result = job(load, name, [tiny], load.model_archive)
    return Result(name, 1, tiny.stat().st_size, result.measurement, _NOTE)


def _test_helpers() -> None:
    folder = str(Path(__file__).resolve().parents[1] / "tests" / "executors")
    if folder not in sys.path:
        sys.path.insert(0, folder)


@contextlib.contextmanager
def _cluster(folder: Path, head: dict[str, Any], *more: dict[str, Any]) -> Iterator[None]:
    _test_helpers()
    from raycluster import running_cluster

    folder.mkdir(parents=True, exist_ok=True)
    with running_cluster(folder, *more, **head):
        yield


@contextlib.contextmanager
def _private_network() -> Iterator[None]:
    _test_helpers()
    from netns import private_network
    from raycluster import ENVIRONMENT

    saved = {name: os.environ.get(name) for name in (*ENVIRONMENT, "RAY_ADDRESS")}
    os.environ.update(ENVIRONMENT)
    os.environ.pop("RAY_ADDRESS", None)
    try:
        with private_network():
            yield
    finally:
        _restore(saved)


@contextlib.contextmanager
def _executor(name: str) -> Iterator[None]:
    saved = {"BATCHTRANSFORM_EXECUTOR": os.environ.get("BATCHTRANSFORM_EXECUTOR")}
    os.environ["BATCHTRANSFORM_EXECUTOR"] = name
    try:
        yield
    finally:
        _restore(saved)


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
