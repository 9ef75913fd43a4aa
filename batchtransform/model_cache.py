"""A job's models fetched once per node, for the instances that run there.

On the local executor every instance fetches its own model, which on one machine is a
local copy at most a few times over. On a Ray cluster many actors of one job share a node,
and each would download the same archive from the object store; instead the first actor
on a node fetches each container's model into ``<job folder>/model-cache/<key>`` (under a
file lock, so the others wait rather than download too) and every instance then copies its
model folder from there, as it copies any local folder. The key is the model's source
(ModelDataUrl, or ModelDataSource's URI, type and compression), and the cache belongs to
the job: a later job fetches again, so a model replaced in the store is never served stale.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import shutil
from pathlib import Path

from batchtransform import config
from batchtransform.errors import RuntimeStartError
from batchtransform.model_data import fetch_model_data
from batchtransform.shapes import ContainerSpec, ModelDataSpec, ModelSpec

__all__ = ["node_cached"]

_DONE = ".complete"


def node_cached(job_name: str, model: ModelSpec) -> ModelSpec:
    """``model`` with each container's model data replaced by this node's cached copy,
    fetched now if no instance on this node has fetched it yet."""
    root = config.job_dir(job_name) / "model-cache"
    root.mkdir(parents=True, exist_ok=True)
    containers = tuple(_cached(root, container) for container in model.containers)
    return dataclasses.replace(model, containers=containers)


def _cached(root: Path, container: ContainerSpec) -> ContainerSpec:
    source = container.model_data
    if source is None:
        return container
    folder = root / _key(source)
    with (root / f"{folder.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not folder.with_suffix(_DONE).exists():
            _fetch(source, folder)
    local = ModelDataSpec(url=str(folder), member=source.member)
    return dataclasses.replace(container, model_data=local, model_data_url=str(folder))


def _fetch(source: ModelDataSpec, folder: Path) -> None:
    """Fetch into a fresh folder; a fetch cut short by a killed actor is started over."""
    shutil.rmtree(folder, ignore_errors=True)
    try:
        fetch_model_data(source, folder)
    except Exception as exc:
        raise RuntimeStartError(f"ClientError: could not fetch the model: {exc}") from exc
    folder.with_suffix(_DONE).touch()  # beside the folder: instances copy the folder


def _key(source: ModelDataSpec) -> str:
    text = "\0".join([source.url, source.data_type or "", source.compression or ""])
    return hashlib.sha256(text.encode()).hexdigest()[:24]
