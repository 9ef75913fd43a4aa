"""A Ray cluster on this machine for tests: a head node and, if asked, more nodes, each a
``ray start --block`` of its own, in a session of its own.

Run inside ``netns.private_network``, so its servers are reachable from nowhere else and
its fixed ports collide with no one. Its temporary folder is under the test's. Stopping a
node ends its ``ray start`` and then kills every process left in its session (GCS, raylet,
agents, the actors' worker processes): nothing it started outlives the test. Removing a
node mid-job is the same kill, as a machine lost.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from netns import private_network

from batchtransform.executors import sessions

HEAD_PORT = 6379
ADDRESS = f"127.0.0.1:{HEAD_PORT}"
_RAY = str(Path(sys.executable).with_name("ray"))
_STOP_GRACE_SECONDS = 10.0
_START_TIMEOUT = 90.0
GIB = 1024**3
# Ray's sockets are ``<temp>/session_<date>_<time>_<micro>_<pid>/sockets/plasma_store``.
_SOCKET_PATH_LIMIT = 107
_SOCKET_PATH_TAIL = 70
# Settings of the cluster's processes and of the drivers that join it: loopback only, so
# no token is needed; no usage reports; nothing under the user's home.
ENVIRONMENT = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass
class RayNode:
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """End the node at once, as a machine lost: every process of its session."""
        sessions.kill_session(self.process.pid)
        self.process.kill()
        self.process.wait()


@dataclass
class RayCluster:
    folder: Path
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def sessions(self) -> list[int]:
        """The session of each node: its processes, the actors' workers included."""
        return [node.process.pid for node in self.nodes]

    @functools.cached_property
    def temp_dir(self) -> Path:
        """Ray's temporary folder: under the test's own, unless its sockets' paths would
        pass the 107 bytes a Unix socket's path may have (then a short one, removed at
        the end)."""
        folder = self.folder / "ray"
        if len(str(folder)) + _SOCKET_PATH_TAIL <= _SOCKET_PATH_LIMIT:
            return folder
        return Path(tempfile.mkdtemp(prefix="ray-"))

    def add_node(
        self, cpus: int, memory_gib: float, gpus: int = 0, resources: str | None = None
    ) -> RayNode:
        """Start a node (the first is the head) declaring these resources, GPUs included
        whether or not the machine has any."""
        number = len(self.nodes)
        arguments = [
            _RAY, "start", "--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
            f"--num-cpus={cpus}", f"--num-gpus={gpus}", f"--memory={int(memory_gib * GIB)}",
            f"--object-store-memory={200 * 1024 * 1024}",
            f"--dashboard-agent-listen-port={52365 + number}",
            f"--dashboard-agent-grpc-port={53365 + number}",
            f"--runtime-env-agent-port={54365 + number}",
            f"--metrics-export-port={55365 + number}",
            f"--min-worker-port={20000 + 1000 * number}",
            f"--max-worker-port={20999 + 1000 * number}",
        ]  # fmt: skip
        if number == 0:
            arguments += [
                "--head", f"--port={HEAD_PORT}", "--include-dashboard=false",
                f"--temp-dir={self.temp_dir}",
            ]  # fmt: skip
        else:
            arguments += [f"--address={ADDRESS}"]
        if resources:
            arguments.append(f"--resources={resources}")
        log = self.folder / f"node-{number}.log"
        environment = {**os.environ, **ENVIRONMENT, "RAY_TMPDIR": str(self.temp_dir)}
        environment.pop("BATCHTRANSFORM_HOME", None)  # the nodes belong to no test's home
        environment.pop("RAY_ADDRESS", None)
        with log.open("wb") as output:
            process = subprocess.Popen(
                arguments, stdout=output, stderr=subprocess.STDOUT, env=environment,
                start_new_session=True,
            )  # fmt: skip
        node = RayNode(process, log)
        self.nodes.append(node)
        self.wait_for_nodes(len(self.nodes))
        return node

    def wait_for_nodes(self, count: int) -> None:
        """Until the cluster has ``count`` live nodes, asked as a driver would (a program of
        its own: this process never joins the cluster)."""
        program = (
            "import ray, sys, time\n"
            f"ray.init(address={ADDRESS!r}, log_to_driver=False, configure_logging=False)\n"
            f"deadline = time.monotonic() + {_START_TIMEOUT}\n"
            f"while sum(n['Alive'] for n in ray.nodes()) < {count}:\n"
            "    assert time.monotonic() < deadline, ray.nodes()\n"
            "    time.sleep(0.2)\n"
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            environment = {**os.environ, **ENVIRONMENT, "RAY_TMPDIR": str(self.temp_dir)}
            try:
                done = subprocess.run(
                    [sys.executable, "-c", program],
                    env=environment, capture_output=True, text=True, timeout=_START_TIMEOUT,
                )  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                raise AssertionError(f"the cluster did not answer: {self._logs()}") from exc
            if done.returncode == 0:
                return
            for node in self.nodes:
                assert node.process.poll() is None, self._logs()
            assert time.monotonic() < deadline, done.stderr[-3000:]
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop every node: ``ray start --block`` stops its processes on SIGTERM; whatever
        is left of its session after the grace period is killed."""
        for node in reversed(self.nodes):
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for node in reversed(self.nodes):
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
            sessions.kill_session(node.process.pid)
        self.nodes.clear()
        if not self.temp_dir.is_relative_to(self.folder):
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _logs(self) -> str:
        return "\n".join(node.log.read_text()[-2000:] for node in self.nodes)


@contextlib.contextmanager
def running_cluster(folder: Path, *more_nodes: dict[str, Any], **head: Any) -> Iterator[RayCluster]:
    """A cluster in a private network (head node ``head``, then ``more_nodes``), with
    ``RAY_ADDRESS`` pointing at it for everything the body starts; stopped at the end."""
    with private_network(), pytest.MonkeyPatch.context() as patch:
        for name, value in {**ENVIRONMENT, "RAY_ADDRESS": ADDRESS}.items():
            patch.setenv(name, value)
        cluster = RayCluster(folder)
        try:
            cluster.add_node(**head)
            for node in more_nodes:
                cluster.add_node(**node)
            yield cluster
        finally:
            cluster.stop()
