"""S3 transfers for ``objects``: an object read as ranged GETs side by side, and an output
uploaded beside the code that writes it, published only when it is complete.

A single GET stream waits out each request's round trip, and s3fs sends each part of an
upload inside ``write``; both would hold up the pipeline. Here reads run a few ranges at
once and uploads run on a thread of their own, each holding a few blocks at most.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, cast

from botocore.exceptions import BotoCoreError, ClientError

from batchtransform import outages
from batchtransform.errors import StorageError

__all__ = [
    "FILE_READ_OPTIONS",
    "S3_PART_SIZE",
    "STORE_FAILURES",
    "WHOLE_READ_OPTIONS",
    "abort_uploads",
    "atomic_upload",
    "concatenate_objects",
    "describe",
    "endpoint",
    "put_whole",
    "ranged_read",
]

logger = logging.getLogger(__name__)

S3_PART_SIZE = 8 * 2**20
"""Outputs up to this size are one PUT; larger ones a multipart upload in parts this big.

8 MiB is the AWS CLI's default part size: few requests, modest memory per open output, and
objects up to 80 GB within S3's 10,000-part limit.
"""

MIN_PART_SIZE = 5 * 2**20
"""S3's smallest part of a multipart upload, but for the last one."""

_MAX_COPY_PART = 5 * 2**30  # the most one UploadPartCopy may copy

_READ_BLOCK = 8 * 2**20
"""Smallest ranged GET when streaming from S3, so a 1 MiB chunk size does not cost one
request per MiB."""

_RANGES_IN_FLIGHT = 4
"""Ranged GETs of one object under way at once. A single stream waits out each request's
round trip; side by side, as AWS advises for throughput, a SeaweedFS on this machine served
95 MB in 0.54-0.74 s instead of 0.88-1.17 s (a model job over it: 2.0-3.2 s -> 1.8-1.9 s),
for at most 32 MiB held per object being read."""

# What a store operation can raise besides our own errors: s3fs translates most S3 errors
# to OSError subclasses, but connection and credential problems arrive as botocore's.
STORE_FAILURES = (OSError, BotoCoreError, ClientError)

# How a file-like S3 read (a tar.gz being unpacked) is opened: it reads ahead one block.
FILE_READ_OPTIONS: dict[str, Any] = {"block_size": _READ_BLOCK, "cache_type": "readahead"}
# How a whole object is read in one call (``cat_file``): s3fs would first ask for its size
# (a HEAD) to fetch a large one in concurrent ranges; these are small (manifests, small
# inputs), so one GET, which halves the round trips of a job over many small objects.
WHOLE_READ_OPTIONS: dict[str, Any] = {"max_concurrency": 1}


def describe(exc: BaseException) -> str:
    """A failure as an error message quotes it: its type, then its text."""
    return f"{type(exc).__name__}: {exc}"


def ranged_read(
    fs: Any, url: str, path: str, first: int = 0, last: int | None = None
) -> Iterator[bytes]:
    """The object (or its bytes ``[first, last)``) in ``_READ_BLOCK`` ranges,
    ``_RANGES_IN_FLIGHT`` fetched at once, in order.

    Each range is one GET that an outage only delays (``outages.call``): a range cut off
    halfway is fetched again whole, so the stream goes on where it was. Closing the
    iterator early cancels the ranges not started and waits for those under way, so no
    request outlives the read.
    """
    where = endpoint(fs)
    size = int(outages.call(lambda: fs.size(path), f"read {url}", where))
    if last is not None:
        size = min(size, last)
    ranges = iter(range(first, size, _READ_BLOCK))

    def get(start: int) -> bytes:
        end = min(start + _READ_BLOCK, size)
        return cast(bytes, fs.cat_file(path, start=start, end=end))

    with ThreadPoolExecutor(_RANGES_IN_FLIGHT, thread_name_prefix="s3-range") as pool:

        def fetch(start: int) -> Future[bytes]:
            return pool.submit(outages.call, lambda: get(start), f"read {url}", where)

        pending = deque(fetch(start) for start in itertools.islice(ranges, _RANGES_IN_FLIGHT))
        try:
            while pending:
                block = pending.popleft().result()
                pending.extend(fetch(start) for start in itertools.islice(ranges, 1))
                yield block
        finally:
            for future in pending:
                future.cancel()


@contextlib.contextmanager
def atomic_upload(fs: Any, url: str, path: str, kms_key_id: str | None) -> Iterator[BinaryIO]:
    """A stream to the S3 object at ``path``, published only when the block exits normally.

    However the block or the commit ends early (an exception, a failed part, SystemExit
    from SIGTERM, even one that arrives during the commit itself) the multipart upload is
    aborted, so no parts are left billed and unlisted.
    """
    upload = _Upload(fs, url, path, kms_key_id)
    behind = _UploadBehind(upload, url)
    try:
        yield cast(BinaryIO, behind)
        behind.finish()
        upload.commit()
        behind.committed_stamp = upload.stamp()
    except BaseException:
        try:
            behind.abandon()
        finally:
            upload.discard()
        raise


def put_whole(fs: Any, url: str, path: str, data: bytes, kms_key_id: str | None) -> str | None:
    """Publish ``data`` as the S3 object at ``path`` and return its stamp (``_Upload.stamp``).

    For an output already whole in memory (a small object's): no thread to upload beside
    a writer, as ``atomic_upload`` starts one per object; a failure aborts what was sent.
    """
    upload = _Upload(fs, url, path, kms_key_id)
    try:
        upload.write(data)
        upload.commit()
    except BaseException:
        upload.discard()
        raise
    return upload.stamp()


def concatenate_objects(
    fs: Any, url: str, path: str, sources: list[tuple[str, int]], kms_key_id: str | None
) -> None:
    """Publish ``path`` as the objects ``sources`` (path, size) one after the other: one
    multipart upload whose parts S3 copies from the sources itself (UploadPartCopy), so
    their bytes do not pass through this process.

    Every part but the last must be 5 MiB or more: where a source (or what is left of one)
    is smaller, its bytes are read here and sent together with the start of what follows,
    until they make a part; so at most about 5 MiB passes through here at each such seam.
    All or nothing, as ``atomic_upload``: the upload is aborted however this ends early.
    """
    upload = _Upload(fs, url, path, kms_key_id)
    try:
        for source, size in sources:
            _append_source(upload, source, size)
        upload.commit()
    except BaseException:
        upload.discard()
        raise


def _append_source(upload: _Upload, source: str, size: int) -> None:
    """Add one source object to the upload: copied where it can be, read where not."""
    offset = 0
    while offset < size:
        rest = size - offset
        if not upload.buffer and rest >= MIN_PART_SIZE:
            length = rest if rest <= _MAX_COPY_PART else min(_MAX_COPY_PART, rest - MIN_PART_SIZE)
            upload.copy_part(source, offset, offset + length)
            offset += length
            continue
        take = min(MIN_PART_SIZE - len(upload.buffer), rest)
        upload.buffer += upload.read_source(source, offset, offset + take)
        offset += take
        if len(upload.buffer) >= MIN_PART_SIZE:
            upload.flush_buffer()


class _Upload:
    """One S3 object written in parts: a single PUT if it stays under ``S3_PART_SIZE``,
    otherwise a multipart upload started with the first full part.

    Each request goes through ``outages.call``, so an outage is waited out part by part
    (a part is sent again whole, which S3 allows). s3fs's own file object is not used: a
    part that fails inside it leaves its buffer and part numbers in a state that cannot
    be retried, and its ``close()`` both publishes and tidies up.
    """

    def __init__(self, fs: Any, url: str, path: str, kms_key_id: str | None) -> None:
        self.fs, self.url = fs, url
        self.bucket, self.key, _ = fs.split_path(path)
        self.encryption = _encryption(kms_key_id)
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.cancelled = False
        self.size = 0  # bytes written
        self.etag: str | None = None  # the published object's, from S3's answer

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self.buffer += data
        while len(self.buffer) >= S3_PART_SIZE:
            part = bytes(self.buffer[:S3_PART_SIZE])
            del self.buffer[:S3_PART_SIZE]
            self._send_part(part)

    def commit(self) -> None:
        """Publish the object: the PUT, or the last part and the completion. s3fs's cached
        listings of the folder are dropped, as its own file does on close."""
        if self.upload_id is None:
            answer = self._call("put_object", Body=bytes(self.buffer), **self.encryption)
        else:
            if self.buffer:
                self._send_part(bytes(self.buffer))
            answer = self._call(
                "complete_multipart_upload",
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
            self.upload_id = None
        self.etag = answer.get("ETag") if isinstance(answer, dict) else None
        self.fs.invalidate_cache(f"{self.bucket}/{self.key}")

    def stamp(self) -> str | None:
        """The published object's size and ETag as ``objects.stamp`` gives them, from the
        answer to the PUT or completion: no request of its own (None without an ETag)."""
        return f"{self.size}:{self.etag.strip(chr(34))}" if self.etag else None

    def discard(self) -> None:
        """Abort the multipart upload, if one is open; a small output was never sent.

        An abort that fails is logged, not raised, so the caller sees the error that caused
        it; the controller's sweep (``abort_uploads``) tries again.
        """
        upload_id, self.upload_id = self.upload_id, None
        if upload_id is None:
            return
        try:
            self._call("abort_multipart_upload", UploadId=upload_id, cancellable=False)
        except StorageError as exc:
            if not isinstance(exc.__cause__, FileNotFoundError):  # NoSuchUpload: gone already
                logger.warning("could not abort the upload of %s: %s", self.url, exc)

    def flush_buffer(self) -> None:
        """Send what the buffer holds as the next part."""
        data = bytes(self.buffer)
        self.buffer.clear()
        self._send_part(data)

    def copy_part(self, source: str, first: int, last: int) -> None:
        """The next part: bytes ``[first, last)`` of the object ``source``, copied by S3."""
        self._start_upload()
        bucket, key, _ = self.fs.split_path(source)
        number = len(self.parts) + 1
        copied = self._call(
            "upload_part_copy",
            UploadId=self.upload_id,
            PartNumber=number,
            CopySource={"Bucket": bucket, "Key": key},
            CopySourceRange=f"bytes={first}-{last - 1}",
        )
        self.parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})

    def read_source(self, source: str, first: int, last: int) -> bytes:
        """Bytes ``[first, last)`` of the object ``source``, for a part too small to copy."""

        def request() -> bytes:
            return cast(bytes, self.fs.cat_file(source, start=first, end=last))

        try:
            return outages.call(request, f"read {source}", endpoint(self.fs))
        except STORE_FAILURES as exc:
            raise StorageError(
                f"cannot read {source}: {describe(exc)}", transient=outages.is_transient(exc)
            ) from exc

    def _start_upload(self) -> None:
        if self.upload_id is None:
            started = self._call("create_multipart_upload", **self.encryption)
            self.upload_id = str(started["UploadId"])

    def _send_part(self, data: bytes) -> None:
        self._start_upload()
        number = len(self.parts) + 1
        sent = self._call("upload_part", UploadId=self.upload_id, PartNumber=number, Body=data)
        self.parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def _call(self, method: str, *, cancellable: bool = True, **kwargs: Any) -> Any:
        def request() -> Any:
            return self.fs.call_s3(method, Bucket=self.bucket, Key=self.key, **kwargs)

        def cancelled() -> bool:
            return cancellable and self.cancelled

        try:
            return outages.call(request, f"write {self.url}", endpoint(self.fs), cancelled)
        except STORE_FAILURES as exc:
            raise StorageError(
                f"cannot write {self.url}: {describe(exc)}", transient=outages.is_transient(exc)
            ) from exc


class _UploadBehind(io.RawIOBase):
    """A writable stream whose writes a thread of its own hands to the upload.

    The upload sends each 8 MiB part inside ``write``; done here, the caller (the
    pipeline) goes on with its next mini-batch while a part goes out. At most two writes
    wait, so memory stays bounded by the part size and the chunk size. An upload that
    fails stops the uploading and is raised, as StorageError, at the next write or at
    ``finish``.
    """

    committed_stamp: str | None = None  # set once the object is published

    def __init__(self, upload: _Upload, url: str) -> None:
        super().__init__()
        self.upload, self.url = upload, url
        self.waiting: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
        self.failure: BaseException | None = None
        self.abandoned = False
        self.thread = threading.Thread(target=self._upload, name="s3-upload", daemon=True)
        self.thread.start()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._raise_failure()
        block = data if isinstance(data, bytes) else bytes(data)
        self.waiting.put(block)
        return len(block)

    def flush(self) -> None:
        """Wait until every write so far has reached the upload (which sends full parts)."""
        self.waiting.join()
        self._raise_failure()

    def finish(self) -> None:
        """Wait until every write has reached the upload; raise the failure, if one came."""
        self.waiting.put(None)
        self.thread.join()
        self._raise_failure()

    def abandon(self) -> None:
        """Stop uploading: what waits is dropped, a part under way stops waiting out an
        outage and is waited for, so that the abort comes after it."""
        self.abandoned = self.upload.cancelled = True
        if self.thread.is_alive():
            self.waiting.put(None)
            self.thread.join()

    def _upload(self) -> None:
        while (block := self.waiting.get()) is not None:
            if self.failure is None and not self.abandoned:
                try:
                    self.upload.write(block)
                except BaseException as exc:  # raised in the writer's thread, in order
                    self.failure = exc
            self.waiting.task_done()
        self.waiting.task_done()

    def _raise_failure(self) -> None:
        if self.failure is None:
            return
        if isinstance(self.failure, STORE_FAILURES):
            raise StorageError(
                f"cannot write {self.url}: {describe(self.failure)}",
                transient=outages.is_transient(self.failure),
            )
        raise self.failure


def abort_uploads(fs: Any, url: str, path: str) -> int:
    """Abort every open multipart upload of exactly the object ``path``; return how many.

    An instance killed by SIGKILL mid-upload cannot abort its own; the controller calls
    this (through ``objects.remove_partials``) once no instance is writing that object.
    """
    bucket, key, _ = fs.split_path(path)
    where = endpoint(fs)

    def listing() -> Any:
        return fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key)

    def abort(upload_id: str) -> Any:
        return fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)

    found = outages.call(listing, f"list the uploads of {url}", where)
    open_ids = [u["UploadId"] for u in found.get("Uploads", []) if u.get("Key") == key]
    for upload_id in open_ids:  # the listing's prefix also matches longer keys
        with contextlib.suppress(FileNotFoundError):  # finished or aborted meanwhile
            outages.call(functools.partial(abort, upload_id), f"abort the upload of {url}", where)
    return len(open_ids)


def endpoint(fs: Any) -> str:
    """Where ``fs`` sends its requests, for error messages: the client's endpoint URL once
    it has connected, else the configured one."""
    with contextlib.suppress(AttributeError):
        return str(fs.s3.meta.endpoint_url)
    configured = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return configured or "the default S3 endpoint"


def _encryption(kms_key_id: str | None) -> dict[str, Any]:
    """The S3 request parameters of SSE-KMS (sent with the PUT or the upload's start)."""
    if not kms_key_id:
        return {}
    return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
