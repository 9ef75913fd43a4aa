"""Fetch a model's data (ModelDataUrl) into an instance's model folder.

SageMaker unpacks ``model.tar.gz`` into ``/opt/ml/model`` before the container starts; we do
the same per instance, from any store ``objects`` reads, and also accept a local folder or a
prefix ending in ``/``. Archives are read as a stream and every member is checked, so a
hostile archive cannot write outside the folder.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from batchtransform import objects
from batchtransform.errors import StorageError

__all__ = ["fetch_model"]

_TAR_SUFFIXES = (".tar.gz", ".tgz")


def fetch_model(model_data_url: str, dest: Path) -> Path:
    """Put the model at ``model_data_url`` into ``dest`` (the container's /opt/ml/model).

    * a ``.tar.gz``/``.tgz`` object on any store is stream-extracted, refusing members
      that would land outside ``dest``;
    * a local folder (plain path or ``file://``) is copied;
    * a prefix ending in ``/`` (an S3 "folder") has every object under it downloaded.

    Raises StorageError when the model is missing, unsafe, or cannot be read; the caller
    wraps it into the job's failure. Returns ``dest``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if model_data_url.lower().endswith(_TAR_SUFFIXES):
        _extract_tar(model_data_url, dest)
    elif (folder := objects.local_folder(model_data_url)) is not None:
        _copy_folder(model_data_url, folder, dest)
    elif model_data_url.endswith("/"):
        _download_prefix(model_data_url, dest)
    else:
        _reject_model_url(model_data_url)
    return dest


def _copy_folder(url: str, folder: Path, dest: Path) -> None:
    try:
        shutil.copytree(folder, dest, dirs_exist_ok=True)
    except (OSError, shutil.Error) as exc:
        raise StorageError(f"cannot copy ModelDataUrl {url}: {_describe(exc)}") from exc


def _download_prefix(url: str, dest: Path) -> None:
    found = objects.list_prefix(url)
    if not found:
        raise StorageError(f"ModelDataUrl {url} not found: no objects under the prefix")
    for item in found:
        _download(url, item, dest / _safe_member_path(url, item.relative))


def _download(model_url: str, item: objects.ObjectInfo, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            for chunk in objects.iter_chunks(item.url):
                out.write(chunk)
    except FileNotFoundError as exc:
        raise StorageError(f"ModelDataUrl {model_url}: {item.url} vanished") from exc
    except OSError as exc:  # the local side: a key that is also a folder, a full disk
        raise StorageError(
            f"ModelDataUrl {model_url}: cannot save {item.url} as {target}: {_describe(exc)}"
        ) from exc


def _reject_model_url(url: str) -> None:
    if not objects.exists(url):
        raise StorageError(f"ModelDataUrl {url} not found")
    raise StorageError(
        f"ModelDataUrl {url} is neither a .tar.gz/.tgz archive, a local folder, "
        "nor a prefix ending in '/'"
    )


def _extract_tar(url: str, dest: Path) -> None:
    """Extract in streaming mode (``r|gz``): one pass, no seeking, no temporary copy."""
    try:
        with (
            objects.open_read(url) as stream,
            tarfile.open(fileobj=stream, mode="r|gz") as archive,
        ):
            for member in archive:
                _check_member(url, member)
                archive.extract(member, dest, **_EXTRACT_FILTER)
    except FileNotFoundError as exc:
        raise StorageError(f"ModelDataUrl {url} not found") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise StorageError(f"cannot unpack ModelDataUrl {url}: {_describe(exc)}") from exc


# Python's own "data" filter (3.10.12+/3.11.4+) is a second line of defence behind
# _check_member: it also strips setuid bits and refuses device files.
_EXTRACT_FILTER: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _check_member(url: str, member: tarfile.TarInfo) -> None:
    """Refuse members that would write outside the model folder or create devices."""
    _safe_member_path(url, member.name)
    if member.issym():
        _safe_member_path(url, str(PurePosixPath(member.name).parent / member.linkname))
    elif member.islnk():
        _safe_member_path(url, member.linkname)
    elif not (member.isfile() or member.isdir()):
        raise StorageError(f"ModelDataUrl {url}: refusing special file {member.name!r}")


def _safe_member_path(url: str, name: str) -> PurePosixPath:
    """``name`` as a path inside the destination, or StorageError if it would escape."""
    path = PurePosixPath(name)
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if path.is_absolute() or depth < 0:
            raise StorageError(
                f"ModelDataUrl {url}: refusing {name!r}, which points outside the model folder"
            )
    return path


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
