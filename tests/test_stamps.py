"""An output's stamp (size and ETag, or mtime) as its commit knows it equals the stamp read
back from the store, so a resume recognises an output as the one it committed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from s3servers import S3Server

from batchtransform import objects
from batchtransform.s3_transfer import S3_PART_SIZE


def write(url: str, data: bytes) -> str | None:
    with objects.atomic_writer(url) as stream:
        stream.write(data)
    return objects.committed_stamp(stream)


def test_local_commit_stamp_is_the_stored_stamp(tmp_path: Path) -> None:
    url = str(tmp_path / "out" / "a.csv.out")
    stamp = write(url, b"a,1\n")
    assert stamp is not None and stamp.startswith("4:")
    assert stamp == objects.stamp(url)
    assert write(url, b"a,12\n") != stamp
    assert objects.stamp(str(tmp_path / "missing.out")) is None


@pytest.mark.parametrize("size", [10, S3_PART_SIZE + 10], ids=["put", "multipart"])
def test_s3_commit_stamp_is_the_stored_stamp(
    moto_s3: S3Server, s3_env: Callable[[S3Server], S3Server], size: int
) -> None:
    server = s3_env(moto_s3)
    bucket = server.make_bucket()
    url = f"s3://{bucket}/out/a.csv.out"
    stamp = write(url, b"x" * size)
    assert stamp is not None and stamp.startswith(f"{size}:")
    assert stamp == objects.stamp(url)
    server.client().put_object(Bucket=bucket, Key="out/a.csv.out", Body=b"changed")
    assert objects.stamp(url) != stamp
