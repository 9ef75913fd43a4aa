"""Object storage through fsspec URLs: list, stream, write atomically.

Every place the service touches the user's data goes through this module, so the job code
never needs to know whether an input lives in S3, on a local disk, or in fsspec's
``memory://`` store (used by tests). URLs are ``s3://bucket/key``, ``file:///path``,
plain local paths, or ``memory://path``.

Where S3 lives comes only from AWS's standard settings, exactly as for the AWS CLI:
``AWS_ENDPOINT_URL_S3`` (then ``AWS_ENDPOINT_URL``, then ``endpoint_url`` in the shared
config file), with credentials and region from the usual chain (``AWS_ACCESS_KEY_ID``,
``AWS_DEFAULT_REGION``, profiles, ...). s3fs passes no endpoint of its own, so botocore
resolves these when a filesystem first connects; ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``
turns the lookup off. fsspec caches one filesystem per set of arguments, so settings
changed later in the same process take effect only after
``s3fs.S3FileSystem.clear_instance_cache()``.

S3 reads and uploads run beside the caller (``s3_transfer``): ranges side by side, parts
on a thread of their own. Every S3 request waits out an outage of the store (lost
connections, timeouts, 5xx) for up to ``BATCHTRANSFORM_STORAGE_RETRY_SECONDS``
(``outages``).

Errors: a missing object raises the built-in ``FileNotFoundError`` where a caller reads one
object (it decides whether that is the user's fault); everything else that goes wrong in
the store (missing bucket, access denied, an outage that outlasted the retries, a full
disk) raises ``StorageError`` naming the URL and the cause.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import fsspec

from batchtransform import outages
from batchtransform.errors import StorageError
from batchtransform.local_files import concatenate_files
from batchtransform.s3_transfer import (
    FILE_READ_OPTIONS,
    S3_PART_SIZE,
    STORE_FAILURES,
    WHOLE_READ_OPTIONS,
    abort_uploads,
    atomic_upload,
    concatenate_objects,
    describe,
    endpoint,
    put_whole,
    ranged_read,
)

T = TypeVar("T")

__all__ = [
    "S3_PART_SIZE",
    "ObjectInfo",
    "atomic_writer",
    "committed_stamp",
    "concatenate",
    "delete",
    "exists",
    "iter_chunks",
    "list_prefix",
    "local_folder",
    "modified_time",
    "open_read",
    "output_url",
    "read_bytes",
    "read_window",
    "remove_partials",
    "stamp",
    "write_bytes",
]


@dataclass(frozen=True)
class ObjectInfo:
    """One object found under an input prefix.

    ``url`` opens the object with the same scheme the user gave (an absolute path for a
    plain local path). ``key`` is the name inside the store: the S3 object key without the
    bucket, or the absolute path for local and memory stores; listings sort by it.
    ``relative`` names the output (see ``list_prefix``) and ``size`` is in bytes.
    """

    url: str
    key: str
    relative: str
    size: int


# --- filesystems -------------------------------------------------------------------------


def _filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and path for ``url``; fsspec caches the instances."""
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise StorageError(f"cannot open {url}: {describe(exc)}") from exc
    return fs, cast(str, path)


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _is_s3(fs: Any) -> bool:
    return "s3" in _protocols(fs)


def _is_local(fs: Any) -> bool:
    return "file" in _protocols(fs)


def _retried(fs: Any, operation: Callable[[], T], what: str) -> T:
    """``operation()``, with an S3 outage waited out; other stores have no outages to wait."""
    if not _is_s3(fs):
        return operation()
    return outages.call(operation, what, endpoint(fs))


def _storage_error(verb: str, url: str, exc: BaseException) -> StorageError:
    """A store failure as StorageError; marked transient when it is an outage that did not
    go through the retries (a file-like read), so the work is run again."""
    return StorageError(
        f"cannot {verb} {url}: {describe(exc)}", transient=outages.is_transient(exc)
    )


def _url_for(url: str, path: str) -> str:
    """Rebuild a URL for ``path`` with the scheme of ``url``, so callers see what they gave."""
    if "://" not in url:
        return path
    scheme = url.split("://", 1)[0]
    return f"{scheme}://{path}"


# --- listing -----------------------------------------------------------------------------


def list_prefix(url: str) -> list[ObjectInfo]:
    """Every object whose name starts with ``url``, taken as a raw key-name prefix.

    This is SageMaker's S3Prefix rule, not a directory listing: ``s3://b/data/train``
    matches ``data/train-1.csv``, ``data/train/x.csv`` and ``data/training.csv``. Nested
    keys are included; zero-byte keys ending in ``/`` (folder markers) and local
    directories are skipped. Local paths follow the same rule (``/in/tr`` matches
    ``/in/train.csv`` and ``/in/tr/a.csv``). A prefix that is itself a whole key includes
    that object. Nothing under the prefix gives ``[]``: the caller decides how to report it.

    ``relative``, the name the output is derived from:

    * if the prefix ends with ``/``, or the key continues the prefix with ``/``, it is the
      rest of the key after the prefix, leading ``/`` removed (``s3://b/in/`` or
      ``s3://b/in`` with ``in/sub/a.csv`` give ``sub/a.csv``), so subfolders are kept;
    * otherwise (the prefix ends mid-name, or is the whole key) it is the key after the
      prefix's last ``/`` (``s3://b/data/train`` with ``data/train-1.csv`` gives
      ``train-1.csv``; ``s3://b/in/a.csv`` with ``in/a.csv`` gives ``a.csv``), keeping the
      full basename as SageMaker training and processing do.

    Raises StorageError when the bucket does not exist, access is denied, or the store
    cannot be reached.
    """
    fs, path = _filesystem(url)
    prefix = path + "/" if url.endswith("/") and not path.endswith("/") else path
    try:
        found = _retried(fs, lambda: _find_under(fs, prefix), f"list {url}")
    except STORE_FAILURES as exc:
        raise _storage_error("list", url, exc) from exc
    objects = [
        _object_info(fs, url, prefix, name, info)
        for name, info in found.items()
        if name.startswith(prefix) and not _is_folder(info)
    ]
    return sorted(objects, key=lambda item: item.key)


def _find_under(fs: Any, prefix: str) -> dict[str, dict[str, Any]]:
    """Candidates for ``prefix``: everything in its parent folder that may match.

    S3 filters by the raw prefix on the server, so a prefix deep in a large bucket lists
    only what matches. Other stores list the parent folder and the caller filters.
    """
    parent, stem = _split_prefix(prefix)
    if _is_s3(fs):
        return cast(dict[str, dict[str, Any]], fs.find(parent, prefix=stem, detail=True))
    if not fs.isdir(parent):
        return {}
    # on_error="raise": fsspec's default silently omits folders it cannot read.
    return cast(dict[str, dict[str, Any]], fs.find(parent, detail=True, on_error="raise"))


def _split_prefix(prefix: str) -> tuple[str, str]:
    """``bucket/data/train`` -> (``bucket/data``, ``train``); a bare bucket has no stem."""
    parent, slash, stem = prefix.rpartition("/")
    if not slash:
        return prefix, ""
    return parent or "/", stem


def _is_folder(info: dict[str, Any]) -> bool:
    if info.get("type") == "directory":
        return True
    return str(info.get("name", "")).endswith("/") and int(info.get("size") or 0) == 0


def _object_info(fs: Any, url: str, prefix: str, name: str, info: dict[str, Any]) -> ObjectInfo:
    key = name.split("/", 1)[1] if _is_s3(fs) else name
    return ObjectInfo(
        url=_url_for(url, name),
        key=key,
        relative=_relative_name(prefix, name),
        size=int(info["size"]),
    )


def _relative_name(prefix: str, name: str) -> str:
    """The output name for ``name`` found under ``prefix``; the rule is in ``list_prefix``."""
    if prefix.endswith("/") or name[len(prefix) : len(prefix) + 1] == "/":
        return name[len(prefix) :].lstrip("/")
    return name[prefix.rfind("/") + 1 :]


# --- reading -----------------------------------------------------------------------------


def iter_chunks(
    url: str, chunk_size: int = 1 << 20, start: int = 0, end: int | None = None
) -> Iterator[bytes]:
    """Stream the object at ``url`` (or its bytes ``[start, end)``) in chunks of at most
    ``chunk_size`` bytes.

    The object is never read whole, so inputs far larger than memory pass through.
    Raises FileNotFoundError if the object does not exist, StorageError on other failures.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    fs, path = _filesystem(url)
    try:
        if _is_s3(fs):
            for block in ranged_read(fs, url, path, start, end):
                for offset in range(0, len(block), chunk_size):
                    yield block[offset : offset + chunk_size]
            return
        with fs.open(path, "rb") as stream:
            stream.seek(start)
            yield from _read_stream(stream, chunk_size, None if end is None else end - start)
    except FileNotFoundError:
        raise
    except STORE_FAILURES as exc:
        raise _storage_error("read", url, exc) from exc


def _read_stream(stream: Any, chunk_size: int, length: int | None) -> Iterator[bytes]:
    """``length`` bytes of ``stream`` (None: to its end) in chunks of ``chunk_size``."""
    left = length
    while left is None or left > 0:
        chunk = stream.read(chunk_size if left is None else min(chunk_size, left))
        if not chunk:
            return
        if left is not None:
            left -= len(chunk)
        yield chunk


def read_window(url: str, start: int, end: int) -> bytes:
    """The bytes ``[start, end)`` of the object at ``url`` (fewer where it ends): one
    request, for the few bytes a reader looks at to find a record boundary."""
    fs, path = _filesystem(url)
    try:
        return cast(
            bytes,
            _retried(fs, lambda: fs.cat_file(path, start=start, end=end), f"read {url}"),
        )
    except FileNotFoundError:
        raise
    except STORE_FAILURES as exc:
        raise _storage_error("read", url, exc) from exc


@contextlib.contextmanager
def open_read(url: str) -> Iterator[BinaryIO]:
    """A readable stream of the object at ``url``, for readers that need a file (tarfile).

    Raises FileNotFoundError if the object does not exist, StorageError on other failures.
    """
    fs, path = _filesystem(url)
    try:
        with fs.open(path, "rb", **(FILE_READ_OPTIONS if _is_s3(fs) else {})) as stream:
            yield stream
    except FileNotFoundError:
        raise
    except STORE_FAILURES as exc:
        raise _storage_error("read", url, exc) from exc


def exists(url: str) -> bool:
    """Whether an object or folder is at ``url``; StorageError if the store cannot say."""
    fs, path = _filesystem(url)
    try:
        return bool(_retried(fs, lambda: fs.exists(path), f"read {url}"))
    except STORE_FAILURES as exc:
        raise _storage_error("read", url, exc) from exc


def local_folder(url: str) -> Path | None:
    """The local folder ``url`` names (plain path or ``file://``), or None if it is not one."""
    fs, path = _filesystem(url)
    return Path(path) if _is_local(fs) and fs.isdir(path) else None


def read_bytes(url: str) -> bytes:
    """The whole object at ``url``: only for small objects such as manifests and configs.

    Raises FileNotFoundError if the object does not exist, StorageError on other failures.
    """
    fs, path = _filesystem(url)
    try:
        options = WHOLE_READ_OPTIONS if _is_s3(fs) else {}
        return cast(bytes, _retried(fs, lambda: fs.cat_file(path, **options), f"read {url}"))
    except FileNotFoundError:
        raise
    except STORE_FAILURES as exc:
        raise _storage_error("read", url, exc) from exc


# --- writing -----------------------------------------------------------------------------


def write_bytes(url: str, data: bytes, kms_key_id: str | None = None) -> str | None:
    """Write ``data`` to ``url`` so that readers see either the old object or all of it;
    the written object's stamp where the commit gave one (``committed_stamp``)."""
    fs, path = _filesystem(url)
    if _is_s3(fs):
        return put_whole(fs, url, path, data, kms_key_id)
    with atomic_writer(url, kms_key_id) as stream:
        stream.write(data)
    return committed_stamp(stream)


def output_url(output_prefix: str, relative: str) -> str:
    """``<S3OutputPath>/<relative>.out``, joined by exactly one ``/``.

    SageMaker names each output after its input; a trailing ``/`` on the output path or a
    leading one on ``relative`` must not produce an empty path segment (``out//a.csv``).
    """
    name = relative.lstrip("/")
    if not name:
        raise ValueError("relative input name is empty")
    return f"{output_prefix.rstrip('/')}/{name}.out"


@contextlib.contextmanager
def atomic_writer(url: str, kms_key_id: str | None = None) -> Iterator[BinaryIO]:
    """A binary stream to ``url`` whose object appears only when the block exits normally.

    SageMaker uploads an object's output only when every mini-batch of it succeeded, so a
    half-written ``.out`` must never be visible. On any exception, including
    KeyboardInterrupt and SystemExit, nothing is left behind and the exception propagates.

    * Local files go to a hidden sibling ``.<name>.<random hex>.partial`` (parent folders
      are created) that ``os.replace`` moves into place; ``remove_partials`` clears the
      siblings a killed process leaves.
    * S3 writes one PUT at the end for outputs under ``S3_PART_SIZE`` and a multipart
      upload above it; failure aborts the upload, which S3 completes only on success.
    * Other stores (``memory://``) buffer in memory and put the object at the end.

    ``kms_key_id`` (TransformOutput.KmsKeyId) encrypts an S3 object with SSE-KMS under that
    key, as SageMaker does; other stores have no such encryption and ignore it.
    """
    fs, path = _filesystem(url)
    if _is_local(fs):
        writer = _local_writer(url, path)
    elif _is_s3(fs):
        writer = atomic_upload(fs, url, path, kms_key_id)
    else:
        writer = _buffered_writer(fs, url, path)
    with writer as stream:
        yield stream


@contextlib.contextmanager
def _local_writer(url: str, path: str) -> Iterator[BinaryIO]:
    """The temporary sibling, renamed into place on success and removed on any other end,
    a SystemExit from SIGTERM included (the ``try`` covers its creation too)."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.partial")
    try:
        _create_partial(url, directory, temporary)
        with _LocalOutput(temporary, url) as stream:
            yield cast(BinaryIO, stream)
        _replace(url, temporary, path)
        written = os.stat(path)
        stream.committed_stamp = f"{written.st_size}:{written.st_mtime}"
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _create_partial(url: str, directory: str, temporary: str) -> None:
    """Reserve the temporary sibling; exclusive creation so two writers never share one."""
    try:
        os.makedirs(directory, exist_ok=True)
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise StorageError(f"cannot write {url}: {describe(exc)}") from exc


class _LocalOutput(io.BufferedWriter):
    """The temporary file, whose own failures (a full disk, a lost permission) are
    StorageErrors naming the output, never confused with whatever the caller was reading
    or running when its write reached the disk."""

    committed_stamp: str | None = None  # set once the file is in place

    def __init__(self, temporary: str, url: str) -> None:
        super().__init__(io.FileIO(temporary, "wb"))
        self.url = url

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            raise StorageError(f"cannot write {self.url}: {describe(exc)}") from exc

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            raise StorageError(f"cannot write {self.url}: {describe(exc)}") from exc

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:
            raise StorageError(f"cannot write {self.url}: {describe(exc)}") from exc


def _replace(url: str, temporary: str, path: str) -> None:
    try:
        os.replace(temporary, path)
    except OSError as exc:
        raise StorageError(f"cannot write {url}: {describe(exc)}") from exc


@contextlib.contextmanager
def _buffered_writer(fs: Any, url: str, path: str) -> Iterator[BinaryIO]:
    buffer = io.BytesIO()
    yield buffer
    try:
        fs.pipe_file(path, buffer.getvalue())
    except STORE_FAILURES as exc:
        raise StorageError(f"cannot write {url}: {describe(exc)}") from exc


def concatenate(url: str, sources: list[str], kms_key_id: str | None = None) -> None:
    """Publish ``url`` as the objects ``sources`` one after the other, all or nothing, and
    remove the sources. S3 copies them into a multipart upload itself
    (``concatenate_objects``); a local output is the first source, renamed to a temporary
    sibling, with the others appended and renamed into place; other stores copy through
    here. A source missing is FileNotFoundError; the store's failures are StorageError.
    """
    fs, path = _filesystem(url)
    paths = [_filesystem(source)[1] for source in sources]
    try:
        if _is_s3(fs):
            sizes = [_size(fs, source, path) for source, path in zip(sources, paths, strict=True)]
            concatenate_objects(fs, url, path, list(zip(paths, sizes, strict=True)), kms_key_id)
        elif _is_local(fs):
            concatenate_files(path, paths)
        else:
            with atomic_writer(url) as stream:
                for source in sources:
                    for chunk in iter_chunks(source):
                        stream.write(chunk)
    except FileNotFoundError:
        raise
    except STORE_FAILURES as exc:
        raise StorageError(f"cannot write {url}: {describe(exc)}") from exc
    for source in sources:
        delete(source)


def _size(fs: Any, url: str, path: str) -> int:
    return int(_retried(fs, lambda: fs.size(path), f"read {url}"))


def delete(url: str) -> bool:
    """Remove the object at ``url``; False where the store says there was none (S3 does
    not say). StorageError on failure."""
    fs, path = _filesystem(url)
    try:
        _retried(fs, lambda: fs.rm_file(path), f"delete {url}")
    except FileNotFoundError:
        return False
    except STORE_FAILURES as exc:
        raise StorageError(f"cannot delete {url}: {describe(exc)}") from exc
    fs.invalidate_cache(path)
    return True


def remove_partials(url: str) -> int:
    """Remove what killed writers of ``url`` left; return how many leftovers there were.

    A process killed with SIGKILL mid-write cannot clean up after itself; the caller runs
    this, once no one is writing ``url``, before retrying an item or after failing it.
    Locally the leftovers are temporary siblings; on S3, open multipart uploads of that
    object (aborted, so that no parts stay billed); memory writes leave nothing.
    """
    fs, path = _filesystem(url)
    if _is_s3(fs):
        try:
            return abort_uploads(fs, url, path)
        except STORE_FAILURES as exc:
            raise StorageError(f"cannot abort the uploads of {url}: {describe(exc)}") from exc
    if not _is_local(fs):
        return 0
    directory, name = os.path.split(path)
    removed = 0
    for leftover in Path(directory).glob(f".{glob.escape(name)}.*.partial"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
            removed += 1
    return removed


def committed_stamp(stream: BinaryIO) -> str | None:
    """The ``stamp`` of the object an ``atomic_writer`` stream published, known without a
    request (S3 answers the PUT with its ETag; a local file is stat'ed as it is renamed);
    None where it is not known (read it with ``stamp``)."""
    return getattr(stream, "committed_stamp", None)


def stamp(url: str) -> str | None:
    """What identifies the object now at ``url``: its size and ETag (S3) or modification
    time (other stores), as one string; None when there is no object.

    A resumed job compares the stamp taken when an output was committed with the stamp
    now, and redoes the work whose output was changed or removed since.
    """
    info = _fresh_info(url)
    if info is None:
        return None
    version = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
    if hasattr(version, "timestamp"):
        version = version.timestamp()
    return f"{info.get('size', 0)}:{str(version).strip(chr(34))}"


def modified_time(url: str) -> float | None:
    """When the object at ``url`` was last written (epoch seconds), or None if there is none.

    S3 gives whole seconds (and, for a multipart upload, the time it was started), so a
    caller comparing times should allow a second or two.
    """
    info = _fresh_info(url)
    if info is None:
        return None
    when = info.get("LastModified", info.get("mtime", info.get("created")))
    if when is None:
        return None
    return when.timestamp() if hasattr(when, "timestamp") else float(when)


def _fresh_info(url: str) -> dict[str, Any] | None:
    """The object's metadata as the store has it now (no cached listing), or None."""
    fs, path = _filesystem(url)
    try:
        fs.invalidate_cache(path)
        info: dict[str, Any] = _retried(fs, lambda: fs.info(path), f"read {url}")
    except FileNotFoundError:
        return None
    except STORE_FAILURES as exc:
        raise _storage_error("read", url, exc) from exc
    return info
