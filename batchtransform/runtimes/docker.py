"""The ``docker`` runtime: any other container Image, run by a container engine as SageMaker
runs it (§7.1): ``docker run <image> serve``, the model folder mounted at /opt/ml/model.

The engine is ``BATCHTRANSFORM_CONTAINER_ENGINE`` (a command name or path), else the first
of ``docker`` and ``podman`` found on PATH. Before anything else, ``start`` checks that the
engine answers (``<engine> info``); when none is installed or reachable the job fails at
once, saying so, rather than waiting for a server that will never come.

Per instance the container gets a name of its own (``batchtransform-<random>``), a label
``batchtransform.model-dir`` with its model folder (which names the job), the container
environment of §7.3 as ``--env`` options (visible in the process list, as with any
``docker run -e``), and its port 8080 published on 127.0.0.1 only, at a free port. The
image is pulled by ``docker run`` when missing (pulling from ECR needs the engine to be
logged in to it), within the startup timeout. ``stop`` ends the ``docker run`` process,
which forwards the signal, and then removes the container (``<engine> rm --force``)
whatever state it is in.

A container is not a child of the instance, so neither a parent-death signal nor the
executor's sweep of a dead instance's session reaches it. Each container therefore has a
small reaper process of its own session, started with it, that waits on a pipe from the
instance: when the instance ends without stopping the container (killed outright), the
pipe closes and the reaper removes the container; ``stop`` dismisses it first.

GPUs: the GPUs the executor gave the instance (its ``CUDA_VISIBLE_DEVICES``, when set and
not empty) go to the container, with Docker's ``--gpus "device=0,1"`` (the NVIDIA
Container Toolkit) or, for Podman, a CDI device ``--device nvidia.com/gpu=0`` each. Inside
the container they are numbered from 0, so the variable itself is not passed on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

from batchtransform.errors import RuntimeStartError
from batchtransform.gpus import VISIBLE_DEVICES
from batchtransform.runtimes.base import RuntimeContext
from batchtransform.runtimes.process import ServerRuntime

__all__ = [
    "CONTAINER_PORT",
    "ENGINE_ENV",
    "MODEL_MOUNT",
    "DockerRuntime",
    "check_engine",
    "docker_command",
    "find_engine",
    "gpu_options",
]

ENGINE_ENV = "BATCHTRANSFORM_CONTAINER_ENGINE"
ENGINES = ("docker", "podman")
CONTAINER_PORT = 8080
MODEL_MOUNT = "/opt/ml/model"
MODEL_DIR_LABEL = "batchtransform.model-dir"
_ENGINE_CHECK_SECONDS = 30.0
_REMOVE_SECONDS = 60.0
_QUOTED_ERROR_CHARS = 400
_REAPER_EXIT_SECONDS = 5.0
# Reads its standard input to the end: the instance writes a byte when it stops the
# container itself; end of input without one means the instance died, so remove it.
_REAPER = (
    "import subprocess, sys\n"
    "if not sys.stdin.buffer.read():\n"
    "    subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, capture_output=True, "
    f"timeout={_REMOVE_SECONDS:g})\n"
)


def find_engine(environment: Mapping[str, str] | None = None) -> str:
    """The container engine command to use; raises RuntimeStartError when there is none."""
    env = os.environ if environment is None else environment
    wanted = env.get(ENGINE_ENV)
    candidates = (wanted,) if wanted else ENGINES
    path = env.get("PATH", os.defpath)
    for candidate in candidates:
        found = shutil.which(candidate, path=path)
        if found is not None:
            return found
    looked_for = f"{ENGINE_ENV}={wanted}" if wanted else " or ".join(ENGINES) + " on PATH"
    raise RuntimeStartError(f"no container engine found (looked for {looked_for})")


def check_engine(engine: str) -> None:
    """Raise RuntimeStartError unless ``<engine> info`` succeeds, i.e. the engine answers."""
    try:
        result = subprocess.run(
            [engine, "info"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_ENGINE_CHECK_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeStartError(f"the container engine {engine} is not reachable: {exc}") from exc
    if result.returncode != 0:
        said = " ".join(result.stderr.decode("utf-8", "replace").split())[-_QUOTED_ERROR_CHARS:]
        raise RuntimeStartError(
            f"the container engine {engine} is not reachable (`{engine} info` exited with "
            f"code {result.returncode}: {said or 'no message'})"
        )


def docker_command(
    engine: str,
    image: str,
    *,
    name: str,
    host_port: int,
    model_dir: Path,
    environment: Mapping[str, str],
    gpus: str = "",
) -> list[str]:
    """``docker run`` for one instance's container, as SageMaker starts it (§7.1);
    ``gpus`` lists the instance's GPUs as ``CUDA_VISIBLE_DEVICES`` does (``0,1``)."""
    model_dir = Path(model_dir).resolve()
    command = [
        engine,
        "run",
        "--rm",
        "--name",
        name,
        "--label",
        f"{MODEL_DIR_LABEL}={model_dir}",
        "--publish",
        f"127.0.0.1:{host_port}:{CONTAINER_PORT}",
        "--volume",
        f"{model_dir}:{MODEL_MOUNT}",
    ]
    command += gpu_options(engine, gpus)
    for key, value in environment.items():
        command += ["--env", f"{key}={value}"]
    return [*command, image, "serve"]


def gpu_options(engine: str, gpus: str) -> list[str]:
    """The engine's options that give a container the GPUs ``gpus`` (``0,1``) names."""
    ids = [part.strip() for part in gpus.split(",") if part.strip()]
    if not ids:
        return []
    if "podman" in Path(engine).name:
        return [option for id_ in ids for option in ("--device", f"nvidia.com/gpu={id_}")]
    # Docker reads the value as CSV: unquoted, "device=0,1" would stop at the comma.
    return ["--gpus", f'"device={",".join(ids)}"']


class DockerRuntime(ServerRuntime):
    """Runs an Image in a container engine; fails at start when no engine is reachable."""

    def __init__(self, context: RuntimeContext) -> None:
        super().__init__(context)
        self.container_name = f"batchtransform-{uuid.uuid4().hex[:12]}"
        self._engine: str | None = None
        self._reaper: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Stop the ``docker run`` process, then remove the container."""
        super().stop()
        self._dismiss_reaper()
        engine, self._engine = self._engine, None
        if engine is None:
            return
        try:
            subprocess.run(
                [engine, "rm", "--force", self.container_name],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_REMOVE_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:  # stopping must not fail the job
            self._server.write(f"could not remove the container {self.container_name}: {exc}")

    def _start(self) -> None:
        try:
            engine = find_engine(self._inherited)
            check_engine(engine)
        except RuntimeStartError as exc:
            raise RuntimeStartError(
                f"Image {self.context.image!r} needs a container engine (Docker or Podman), "
                f"and {exc.message}. Start one, or name a model server program "
                "(process:///path/to/program) or batchtransform/python as the Image."
            ) from exc
        self._engine = engine
        self._start_reaper(engine)
        super()._start()

    def _start_reaper(self, engine: str) -> None:
        """The process that removes the container if this instance dies without stopping it."""
        self._reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER, engine, "rm", "--force", self.container_name],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outside the instance's session, which is swept
        )

    def _dismiss_reaper(self) -> None:
        reaper, self._reaper = self._reaper, None
        if reaper is None or reaper.stdin is None:
            return
        with contextlib.suppress(OSError):
            reaper.stdin.write(b"stopped")
            reaper.stdin.close()
        try:
            reaper.wait(_REAPER_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            reaper.kill()
            reaper.wait()

    def _command(self, port: int) -> list[str]:
        assert self._engine is not None
        return docker_command(
            self._engine,
            self.context.image,
            name=self.container_name,
            host_port=port,
            model_dir=Path(self.context.model_dir),
            environment=self.context.environment,
            gpus=self._inherited.get(VISIBLE_DEVICES, ""),
        )

    def _environment(self, port: int) -> dict[str, str]:
        return self._inherited

    def _what(self) -> str:
        return f"the container {self.container_name} of image {self.context.image}"
