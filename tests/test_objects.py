"""batchtransform.objects against every store: one contract, five backends.

``ObjectStoreContract`` holds the tests; each backend class only says how to reach its
store directly (to set up and inspect data behind the module's back). Local paths,
``file://`` URLs, ``memory://``, moto's S3 and SeaweedFS's S3 all run the same tests.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
import s3fs

from batchtransform import s3_transfer
from batchtransform.errors import StorageError
from batchtransform.model_data import fetch_model
from batchtransform.objects import (
    S3_PART_SIZE,
    atomic_writer,
    iter_chunks,
    list_prefix,
    output_url,
    read_bytes,
    remove_partials,
    write_bytes,
)

MiB = 2**20


# --- backends ----------------------------------------------------------------------------


class Backend:
    """Direct access to one store under ``root`` (a URL without a trailing slash)."""

    root: str

    def url(self, key: str) -> str:
        return f"{self.root}/{key}"

    def key(self, key: str) -> str:
        """What ``ObjectInfo.key`` should be for ``key``."""
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def folder(self, key: str) -> None:
        """A folder marker: an empty directory, or a zero-byte S3 key ending in '/'."""
        raise NotImplementedError

    def names(self) -> list[str]:
        """Every object stored under root, hidden ones included, relative to root."""
        raise NotImplementedError

    def multipart_uploads(self) -> list[str]:
        return []


class LocalBackend(Backend):
    def __init__(self, directory: Path, *, as_url: bool) -> None:
        self.directory = directory
        directory.mkdir()
        self.root = f"file://{directory}" if as_url else str(directory)

    def key(self, key: str) -> str:
        return str(self.directory / key)

    def put(self, key: str, data: bytes) -> None:
        path = self.directory / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def get(self, key: str) -> bytes | None:
        path = self.directory / key
        return path.read_bytes() if path.exists() else None

    def folder(self, key: str) -> None:
        (self.directory / key).mkdir(parents=True, exist_ok=True)

    def names(self) -> list[str]:
        files = (p for p in self.directory.rglob("*") if not p.is_dir())
        return sorted(p.relative_to(self.directory).as_posix() for p in files)


class MemoryBackend(Backend):
    def __init__(self) -> None:
        self.fs = fsspec.filesystem("memory")
        self.base = f"/bt-test-{uuid.uuid4().hex}"
        self.root = f"memory://{self.base}"

    def key(self, key: str) -> str:
        return f"{self.base}/{key}"

    def put(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self.key(key), data)

    def get(self, key: str) -> bytes | None:
        return self.fs.cat_file(self.key(key)) if self.fs.isfile(self.key(key)) else None

    def folder(self, key: str) -> None:
        self.fs.mkdir(self.key(key).rstrip("/"))

    def names(self) -> list[str]:
        found = self.fs.find(self.base) if self.fs.exists(self.base) else []
        return sorted(name[len(self.base) + 1 :] for name in found)

    def close(self) -> None:
        if self.fs.exists(self.base):
            self.fs.rm(self.base, recursive=True)


class S3Backend(Backend):
    def __init__(self, server: Any, bucket: str) -> None:
        self.client = server.client()
        self.bucket = bucket
        self.root = f"s3://{bucket}"

    def key(self, key: str) -> str:
        return key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def folder(self, key: str) -> None:
        self.put(key, b"")

    def names(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def multipart_uploads(self) -> list[str]:
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [upload["Key"] for upload in uploads]


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A gzipped tar of regular files, built in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def listing(store: Backend, prefix: str) -> list[tuple[str, str]]:
    return [(item.key, item.relative) for item in list_prefix(store.url(prefix))]


# --- the contract ------------------------------------------------------------------------


class ObjectStoreContract:
    """What every store must do; subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Backend:
        raise NotImplementedError

    # listing

    def test_prefix_ending_mid_name_matches_raw_key_prefix(self, store: Backend) -> None:
        for key in ["data/train-1.csv", "data/train/x.csv", "data/training.csv"]:
            store.put(key, b"1\n")
        store.put("data/test.csv", b"1\n")
        store.put("other/train.csv", b"1\n")
        assert listing(store, "data/train") == [
            (store.key("data/train-1.csv"), "train-1.csv"),
            (store.key("data/train/x.csv"), "x.csv"),
            (store.key("data/training.csv"), "training.csv"),
        ]

    @pytest.mark.parametrize(
        ("prefix", "expected"),
        [
            ("in/", [("in/a.csv", "a.csv"), ("in/sub/b.csv", "sub/b.csv")]),
            (
                "in",
                [("in/a.csv", "a.csv"), ("in/sub/b.csv", "sub/b.csv"), ("input.csv", "input.csv")],
            ),
            ("in/sub", [("in/sub/b.csv", "b.csv")]),
        ],
    )
    def test_nested_keys_keep_their_subfolder(
        self, store: Backend, prefix: str, expected: list[tuple[str, str]]
    ) -> None:
        for key in ["in/a.csv", "in/sub/b.csv", "input.csv"]:
            store.put(key, b"1\n")
        assert listing(store, prefix) == [(store.key(key), rel) for key, rel in expected]

    def test_folder_markers_and_directories_are_skipped(self, store: Backend) -> None:
        store.folder("in/")
        store.folder("in/sub/")
        store.folder("in/empty/")
        store.put("in/sub/a.csv", b"1\n")
        assert listing(store, "in/") == [(store.key("in/sub/a.csv"), "sub/a.csv")]
        assert listing(store, "in/empty") == []

    def test_prefix_that_is_a_whole_key_includes_that_object(self, store: Backend) -> None:
        for key in ["in/a.csv", "in/a.csv.bak", "in/b.csv"]:
            store.put(key, b"1\n")
        assert listing(store, "in/a.csv") == [
            (store.key("in/a.csv"), "a.csv"),
            (store.key("in/a.csv.bak"), "a.csv.bak"),
        ]

    @pytest.mark.parametrize("prefix", ["nothing/here", "nothing/", "in/a.csvx"])
    def test_prefix_matching_nothing_lists_nothing(self, store: Backend, prefix: str) -> None:
        store.put("in/a.csv", b"1\n")
        assert list_prefix(store.url(prefix)) == []

    def test_listed_url_opens_the_object_with_the_given_scheme(self, store: Backend) -> None:
        store.put("in/a.csv", b"a,b\n")
        [item] = list_prefix(store.url("in/"))
        assert item.size == 4
        assert item.url == store.url("in/a.csv")
        assert read_bytes(item.url) == b"a,b\n"

    # reading

    def test_iter_chunks_streams_a_multi_mib_object(self, store: Backend) -> None:
        data = os.urandom(3 * MiB + 123)
        store.put("in/big.bin", data)
        chunks = list(iter_chunks(store.url("in/big.bin"), chunk_size=MiB))
        assert [len(chunk) for chunk in chunks] == [MiB, MiB, MiB, 123]
        assert b"".join(chunks) == data

    def test_reading_a_missing_object_is_file_not_found(self, store: Backend) -> None:
        with pytest.raises(FileNotFoundError):
            list(iter_chunks(store.url("in/missing.csv")))
        with pytest.raises(FileNotFoundError):
            read_bytes(store.url("in/missing.csv"))

    # writing

    def test_write_bytes_creates_parents_and_leaves_only_the_object(self, store: Backend) -> None:
        write_bytes(store.url("out/sub/a.csv.out"), b"result\n")
        assert store.get("out/sub/a.csv.out") == b"result\n"
        assert store.names() == ["out/sub/a.csv.out"]

    def test_atomic_writer_publishes_only_on_exit(self, store: Backend) -> None:
        store.put("out/a.csv.out", b"old")
        with atomic_writer(store.url("out/a.csv.out")) as stream:
            stream.write(b"new ")
            stream.write(b"output")
            assert store.get("out/a.csv.out") == b"old"
        assert store.get("out/a.csv.out") == b"new output"
        assert store.names() == ["out/a.csv.out"]

    @pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt, SystemExit])
    def test_atomic_writer_failure_leaves_nothing(
        self, store: Backend, error: type[BaseException]
    ) -> None:
        with pytest.raises(error), atomic_writer(store.url("out/a.csv.out")) as stream:
            stream.write(b"x" * 1000)
            raise error("stopped mid-way")
        assert store.names() == []

    def test_atomic_writer_failure_keeps_the_previous_object(self, store: Backend) -> None:
        store.put("out/a.csv.out", b"old")
        with pytest.raises(RuntimeError), atomic_writer(store.url("out/a.csv.out")) as stream:
            stream.write(b"new")
            raise RuntimeError("model failed")
        assert store.names() == ["out/a.csv.out"]
        assert store.get("out/a.csv.out") == b"old"

    def test_remove_partials_without_leftovers_removes_nothing(self, store: Backend) -> None:
        write_bytes(store.url("out/a.csv.out"), b"done")
        assert remove_partials(store.url("out/a.csv.out")) == 0
        assert store.names() == ["out/a.csv.out"]

    # models

    def test_fetch_model_extracts_a_tar_gz(self, store: Backend, tmp_path: Path) -> None:
        members = {"model.joblib": b"weights", "code/inference.py": b"def predict(): ...\n"}
        store.put("models/model.tar.gz", tar_gz(members))
        dest = fetch_model(store.url("models/model.tar.gz"), tmp_path / "model")
        assert dest == tmp_path / "model"
        assert (dest / "model.joblib").read_bytes() == b"weights"
        assert (dest / "code" / "inference.py").read_bytes() == members["code/inference.py"]

    def test_fetch_model_downloads_a_folder_prefix(self, store: Backend, tmp_path: Path) -> None:
        store.put("models/m/a.bin", b"a")
        store.put("models/m/sub/b.txt", b"b")
        store.put("models/m2/c.txt", b"c")
        dest = fetch_model(store.url("models/m/"), tmp_path / "model")
        files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
        assert files == ["a.bin", "sub/b.txt"]
        assert (dest / "sub" / "b.txt").read_bytes() == b"b"

    def test_fetch_model_refuses_a_member_escaping_the_folder(
        self, store: Backend, tmp_path: Path
    ) -> None:
        store.put("models/evil.tar.gz", tar_gz({"ok.txt": b"fine", "../evil": b"gotcha"}))
        with pytest.raises(StorageError, match=r"refusing '\.\./evil'"):
            fetch_model(store.url("models/evil.tar.gz"), tmp_path / "model")
        assert not (tmp_path / "evil").exists()

    @pytest.mark.parametrize("key", ["models/missing.tar.gz", "models/missing/", "models/x"])
    def test_fetch_model_missing_is_storage_error(
        self, store: Backend, tmp_path: Path, key: str
    ) -> None:
        with pytest.raises(StorageError, match="not found"):
            fetch_model(store.url(key), tmp_path / "model")


# --- local stores ------------------------------------------------------------------------


class LocalContract(ObjectStoreContract):
    """Local files add temporary siblings, which must never be listed or left behind."""

    def test_remove_partials_deletes_only_that_targets_leftovers(self, store: Backend) -> None:
        for name in [".a.csv.out.0123abcd.partial", ".a.csv.out.feedbeef.partial"]:
            store.put(f"out/{name}", b"half")
        store.put("out/.b.csv.out.0123abcd.partial", b"other item")
        store.put("out/a.csv.out", b"previous run")
        assert remove_partials(store.url("out/a.csv.out")) == 2
        assert store.names() == ["out/.b.csv.out.0123abcd.partial", "out/a.csv.out"]

    def test_a_writer_killed_mid_write_leaves_a_partial_for_remove_partials(
        self, store: Backend
    ) -> None:
        target = store.url("out/a.csv.out")
        script = textwrap.dedent(
            f"""
            import os, signal
            from batchtransform.objects import atomic_writer
            with atomic_writer({target!r}) as stream:
                stream.write(b"half an output")
                stream.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            """
        )
        done = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
        assert done.returncode == -9
        [leftover] = store.names()
        assert leftover.startswith("out/.a.csv.out.")
        assert leftover.endswith(".partial")
        assert list_prefix(store.url("out/a")) == []
        assert remove_partials(target) == 1
        assert store.names() == []

    def test_fetch_model_copies_a_local_folder(self, store: Backend, tmp_path: Path) -> None:
        store.put("models/m/model.joblib", b"weights")
        store.put("models/m/code/inference.py", b"code")
        dest = fetch_model(store.url("models/m"), tmp_path / "model")
        assert (dest / "model.joblib").read_bytes() == b"weights"
        assert (dest / "code" / "inference.py").read_bytes() == b"code"


class TestLocalPath(LocalContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Backend:
        return LocalBackend(tmp_path / "store", as_url=False)

    def test_relative_paths_become_absolute(
        self, store: Backend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert isinstance(store, LocalBackend)
        store.put("in/a.csv", b"1\n")
        monkeypatch.chdir(store.directory)
        [item] = list_prefix("in/")
        assert item.url == str(store.directory / "in" / "a.csv")
        assert item.relative == "a.csv"


class TestFileURL(LocalContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Backend:
        return LocalBackend(tmp_path / "store", as_url=True)


class TestMemory(ObjectStoreContract):
    @pytest.fixture
    def store(self) -> Any:
        backend = MemoryBackend()
        yield backend
        backend.close()


# --- S3 ----------------------------------------------------------------------------------


class S3Contract(ObjectStoreContract):
    """S3 adds buckets, credentials and multipart uploads."""

    def test_an_object_of_many_ranges_is_read_whole_and_in_order(
        self, store: Backend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(s3_transfer, "_READ_BLOCK", MiB)  # more ranges than run at once
        data = os.urandom(3 * s3_transfer._RANGES_IN_FLIGHT * MiB + 7)
        store.put("in/large.bin", data)
        chunks = list(iter_chunks(store.url("in/large.bin"), chunk_size=MiB // 2))
        assert b"".join(chunks) == data
        assert max(len(chunk) for chunk in chunks) == MiB // 2

    def test_a_read_stopped_early_leaves_no_request_running(
        self, store: Backend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(s3_transfer, "_READ_BLOCK", MiB)
        store.put("in/large.bin", os.urandom(3 * s3_transfer._RANGES_IN_FLIGHT * MiB))
        stream = iter_chunks(store.url("in/large.bin"))
        assert len(next(stream)) == MiB
        stream.close()
        assert not [t for t in threading.enumerate() if t.name.startswith("s3-range")]

    def test_large_output_is_a_multipart_upload(self, store: Backend) -> None:
        data = os.urandom(S3_PART_SIZE + MiB)
        with atomic_writer(store.url("out/big.out")) as stream:
            for start in range(0, len(data), MiB):
                stream.write(data[start : start + MiB])
            stream.flush()  # parts go out on a thread of their own
            assert store.multipart_uploads() == ["out/big.out"]
            assert store.get("out/big.out") is None
        assert store.get("out/big.out") == data
        assert store.multipart_uploads() == []

    def test_failed_multipart_upload_is_aborted(self, store: Backend) -> None:
        with pytest.raises(RuntimeError), atomic_writer(store.url("out/big.out")) as stream:
            for _ in range(S3_PART_SIZE // MiB + 1):
                stream.write(os.urandom(MiB))
            stream.flush()
            assert store.multipart_uploads() == ["out/big.out"]
            raise RuntimeError("model failed on the last batch")
        assert store.multipart_uploads() == []
        assert store.names() == []

    def test_missing_bucket_is_storage_error(self, store: Backend) -> None:
        url = f"s3://bt-missing-{uuid.uuid4().hex[:12]}/in/"
        with pytest.raises(StorageError, match=url):
            list_prefix(url)

    def test_endpoint_falls_back_to_aws_endpoint_url(
        self, store: Backend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
        monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        s3fs.S3FileSystem.clear_instance_cache()
        write_bytes(store.url("out/a.csv.out"), b"via AWS_ENDPOINT_URL")
        assert store.get("out/a.csv.out") == b"via AWS_ENDPOINT_URL"


class TestMotoS3(S3Contract):
    @pytest.fixture
    def store(self, moto_s3: Any, s3_env: Any, new_bucket: Any) -> Backend:
        server = s3_env(moto_s3)
        return S3Backend(server, new_bucket(server))

    @pytest.mark.parametrize("size", [10, S3_PART_SIZE + MiB], ids=["one PUT", "multipart"])
    def test_kms_key_encrypts_the_output(self, store: S3Backend, size: int) -> None:
        key = "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        with atomic_writer(store.url("out/secret.out"), kms_key_id=key) as stream:
            stream.write(os.urandom(size))
        head = store.client.head_object(Bucket=store.bucket, Key="out/secret.out")
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == key

    def test_an_upload_that_fails_is_a_storage_error(self, store: Backend) -> None:
        url = f"s3://bt-missing-{uuid.uuid4().hex[:12]}/out/big.out"
        with pytest.raises(StorageError, match="cannot write"), atomic_writer(url) as stream:
            # SeaweedFS makes a missing bucket on the first write; moto refuses the upload
            for _ in range(2 * S3_PART_SIZE // MiB + 1):
                stream.write(os.urandom(MiB))
        assert not [t for t in threading.enumerate() if t.name == "s3-upload"]


class TestSeaweedS3(S3Contract):
    @pytest.fixture
    def store(self, seaweed_s3: Any, s3_env: Any, new_bucket: Any) -> Backend:
        server = s3_env(seaweed_s3)
        return S3Backend(server, new_bucket(server))

    def test_wrong_secret_is_storage_error(
        self, store: Backend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store.put("in/a.csv", b"1\n")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        s3fs.S3FileSystem.clear_instance_cache()
        with pytest.raises(StorageError, match="cannot list"):
            list_prefix(store.url("in/"))


# --- store-independent rules -------------------------------------------------------------


@pytest.mark.parametrize(
    ("output_prefix", "relative", "expected"),
    [
        ("s3://b/out", "a.csv", "s3://b/out/a.csv.out"),
        ("s3://b/out/", "a.csv", "s3://b/out/a.csv.out"),
        ("s3://b/out/", "sub/a.csv", "s3://b/out/sub/a.csv.out"),
        ("s3://b", "a.csv", "s3://b/a.csv.out"),
        ("s3://b/", "/a.csv", "s3://b/a.csv.out"),
        ("/data/out", "train-1.csv", "/data/out/train-1.csv.out"),
        ("file:///data/out/", "x/y.jsonl", "file:///data/out/x/y.jsonl.out"),
    ],
)
def test_output_url_joins_with_one_slash(output_prefix: str, relative: str, expected: str) -> None:
    assert output_url(output_prefix, relative) == expected


def test_output_url_needs_a_name() -> None:
    with pytest.raises(ValueError, match="empty"):
        output_url("s3://b/out", "")


def _unsafe_member(kind: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo({"absolute": "/tmp/evil", "dotdot": "a/../../evil"}.get(kind, "link"))
    if kind == "symlink-absolute":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "symlink-up":
        info.type, info.linkname = tarfile.SYMTYPE, "../../evil"
    elif kind == "hardlink-up":
        info.type, info.linkname = tarfile.LNKTYPE, "../evil"
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
    return info


@pytest.mark.parametrize(
    "kind", ["absolute", "dotdot", "symlink-absolute", "symlink-up", "hardlink-up", "fifo"]
)
def test_fetch_model_refuses_unsafe_members(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(_unsafe_member(kind), io.BytesIO(b""))
    with pytest.raises(StorageError, match="refusing"):
        fetch_model(str(archive), tmp_path / "deep" / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "model.tar.gz"]


def test_fetch_model_rejects_a_corrupt_archive(tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"not gzip at all")
    with pytest.raises(StorageError, match="cannot unpack"):
        fetch_model(str(archive), tmp_path / "model")


def test_fetch_model_rejects_a_single_non_archive_object(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"weights")
    with pytest.raises(StorageError, match="neither"):
        fetch_model(str(tmp_path / "model.joblib"), tmp_path / "model")


def test_s3_fixture_reaches_each_server_through_the_standard_variables(
    s3: Any, s3_bucket: str
) -> None:
    write_bytes(f"s3://{s3_bucket}/hello.txt", b"hi")
    body = s3.client().get_object(Bucket=s3_bucket, Key="hello.txt")["Body"].read()
    assert body == b"hi"
