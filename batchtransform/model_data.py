"""Fetch a container's model data into an instance's model folder.

SageMaker unpacks ``model.tar.gz`` into ``/opt/ml/model`` before the container starts; we do
the same per instance, from any store ``objects`` reads. Two ways to name the model:

* ``ModelDataUrl`` (``fetch_model``): a ``.tar.gz``/``.tgz`` archive; we also accept a local
  folder, or a prefix ending in ``/`` whose objects are the folder;
* ``ModelDataSource.S3DataSource`` (``fetch_model_data``), as SageMaker reads it:
  ``S3Prefix`` + ``None``, every object under the prefix is a file of the model folder (the
  key less the prefix is its path); ``S3Object`` + ``Gzip``, a ``model.tar.gz``;
  ``S3Object`` + ``None``, one file, named by the key's last part. SageMaker refuses
  ModelDataSource for batch transform; we accept it.

Everything is streamed: an archive in one pass, objects chunk by chunk, never a whole
object in memory. Every archive member and every key is checked, so no model can write
outside its folder; keys follow SageMaker's rules (no empty, ``.`` or ``..`` segment).
Zero-byte folder markers are skipped, where SageMaker fails the deployment.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from batchtransform import objects
from batchtransform.errors import StorageError
from batchtransform.shapes import ModelDataSpec

__all__ = ["fetch_model", "fetch_model_data"]

_TAR_SUFFIXES = (".tar.gz", ".tgz")


def fetch_model_data(source: ModelDataSpec, dest: Path) -> Path:
    """Put the model ``source`` names into ``dest`` (the container's /opt/ml/model).

    Raises StorageError, naming the request member and URL, when the model is missing,
    unsafe, or cannot be read; the caller fails the job with it. Returns ``dest``.
    """
    if source.data_type is None:
        return fetch_model(source.url, dest, source.label)
    dest.mkdir(parents=True, exist_ok=True)
    if source.data_type == "S3Prefix":
        _download_prefix(source.url, dest, source.label, strict=True)
    elif source.compression == "Gzip":
        _extract_tar(source.url, dest, source.label)
    else:
        _download_object(source.url, dest, source.label)
    return dest


def fetch_model(model_data_url: str, dest: Path, label: str | None = None) -> Path:
    """Put the model at ``model_data_url`` into ``dest`` (the container's /opt/ml/model).

    * a ``.tar.gz``/``.tgz`` object on any store is stream-extracted, refusing members
      that would land outside ``dest``;
    * a local folder (plain path or ``file://``) is copied;
    * a prefix ending in ``/`` (an S3 "folder") has every object under it downloaded.

    ``label`` names the source in errors (default ``ModelDataUrl <url>``). Raises
    StorageError when the model is missing, unsafe, or cannot be read. Returns ``dest``.
    """
    label = label or f"ModelDataUrl {model_data_url}"
    dest.mkdir(parents=True, exist_ok=True)
    if model_data_url.lower().endswith(_TAR_SUFFIXES):
        _extract_tar(model_data_url, dest, label)
    elif (folder := objects.local_folder(model_data_url)) is not None:
        _copy_folder(label, folder, dest)
    elif model_data_url.endswith("/"):
        _download_prefix(model_data_url, dest, label, strict=False)
    else:
        _reject_model_url(model_data_url, label)
    return dest


def _copy_folder(label: str, folder: Path, dest: Path) -> None:
    try:
        shutil.copytree(folder, dest, dirs_exist_ok=True)
    except (OSError, shutil.Error) as exc:
        raise StorageError(f"cannot copy {label}: {_describe(exc)}") from exc


def _download_prefix(url: str, dest: Path, label: str, strict: bool) -> None:
    """Every object under ``url`` into ``dest``, checked first, then streamed one by one.

    ``strict`` applies SageMaker's naming rules for uncompressed model data on top of the
    escape check."""
    found = objects.list_prefix(url)
    if not found:
        raise StorageError(f"{label} not found: no model files under the prefix")
    targets = [(item, _member_path(label, item.relative, strict)) for item in found]
    for item, relative in targets:
        _download(label, item, dest / relative)


def _download_object(url: str, dest: Path, label: str) -> None:
    """One uncompressed object, saved under the last part of its key."""
    name = PurePosixPath(url.rstrip("/")).name
    if url.endswith("/") or not name:
        raise StorageError(f"{label} names no object: S3Object needs a key, not a prefix")
    item = objects.ObjectInfo(url=url, key=url, relative=name, size=-1)
    _download(label, item, dest / _member_path(label, name, strict=True))


def _download(label: str, item: objects.ObjectInfo, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            for chunk in objects.iter_chunks(item.url):
                out.write(chunk)
    except FileNotFoundError as exc:
        raise StorageError(f"{label}: {item.url} not found") from exc
    except OSError as exc:  # the local side: a key that is also a folder, a full disk
        raise StorageError(
            f"{label}: cannot save {item.url} as {target}: {_describe(exc)}"
        ) from exc


def _reject_model_url(url: str, label: str) -> None:
    if not objects.exists(url):
        raise StorageError(f"{label} not found")
    raise StorageError(
        f"{label} is neither a .tar.gz/.tgz archive, a local folder, nor a prefix ending in '/'"
    )


def _extract_tar(url: str, dest: Path, label: str) -> None:
    """Extract in streaming mode (``r|gz``): one pass, no seeking, no temporary copy."""
    try:
        with (
            objects.open_read(url) as stream,
            tarfile.open(fileobj=stream, mode="r|gz") as archive,
        ):
            for member in archive:
                _check_member(label, member)
                archive.extract(member, dest, **_EXTRACT_FILTER)
    except FileNotFoundError as exc:
        raise StorageError(f"{label} not found") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise StorageError(f"cannot unpack {label}: {_describe(exc)}") from exc


# Python's own "data" filter (3.10.12+/3.11.4+) is a second line of defence behind
# _check_member: it also strips setuid bits and refuses device files.
_EXTRACT_FILTER: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _check_member(label: str, member: tarfile.TarInfo) -> None:
    """Refuse members that would write outside the model folder or create devices."""
    _safe_member_path(label, member.name)
    if member.issym():
        _safe_member_path(label, str(PurePosixPath(member.name).parent / member.linkname))
    elif member.islnk():
        _safe_member_path(label, member.linkname)
    elif not (member.isfile() or member.isdir()):
        raise StorageError(f"{label}: refusing special file {member.name!r}")


def _member_path(label: str, name: str, strict: bool) -> PurePosixPath:
    """``_safe_member_path``, plus SageMaker's rules for uncompressed model data when
    ``strict``: no empty, ``.`` or ``..`` segment, no NUL, no segment over 255 bytes."""
    path = _safe_member_path(label, name)
    if strict:
        parts = name.split("/")
        bad = [p for p in parts if p in ("", ".", "..") or "\0" in p or len(p.encode()) > 255]
        if bad:
            raise StorageError(
                f"{label}: refusing the key {name!r}: SageMaker model file names may not be "
                "empty, '.' or '..', hold NUL or exceed 255 bytes"
            )
    return path


def _safe_member_path(label: str, name: str) -> PurePosixPath:
    """``name`` as a path inside the destination, or StorageError if it would escape."""
    path = PurePosixPath(name)
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if path.is_absolute() or depth < 0:
            raise StorageError(f"{label}: refusing {name!r}, which points outside the model folder")
    return path


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
