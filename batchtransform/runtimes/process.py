"""The ``process`` runtime: a model server program on this machine that keeps the SageMaker
container contract (§7): ``GET /ping``, ``POST /invocations``, optional
``GET /execution-parameters``.

An Image names the program by its absolute path, in any of three spellings:
``process:///opt/models/serve.py``, ``file:///opt/models/serve.py`` or plain
``/opt/models/serve.py``. As SageMaker runs ``docker run <image> serve``, the runtime runs
``<program> serve`` (so a wrapper script is how to pass other arguments), once per instance,
with:

* the working directory set to the model folder (SageMaker's /opt/ml/model), whose path is
  also in ``SM_MODEL_DIR``;
* ``SAGEMAKER_BIND_TO_PORT`` set to a free port: the program must listen on 127.0.0.1 (or
  all addresses) at that port, as SageMaker's toolkits do when the variable is set;
* exactly the container environment of §7.3 (the model's Environment, ``SAGEMAKER_BATCH``
  and the batch variables the request set, the job's Environment) on top of this process's
  environment as it was when the runtime was created, less any ``SAGEMAKER_*`` and ``SM_*``
  variables that environment carried.

The program runs in a process group of its own, inside the instance's session; its output
(stdout and stderr) goes to the instance's model log, and its last lines are kept to quote
when it fails to start. ``stop`` ends its whole process group: SIGTERM, then SIGKILL after
``STOP_GRACE_SECONDS``. On Linux the program also gets SIGKILL if the instance dies without
stopping it (a "parent death signal"), and the executor then kills whatever else is left
in the dead instance's session (the processes the program started).

A server that exits while the job runs is no longer ``alive()``: the instance restarts the
runtime (a new ``ServerRuntime``) and retries the request.

``ServerRuntime`` holds what every server runtime shares (the docker runtime is another):
launch, wait for health within ``startup_timeout``, invoke with ``invocation_timeout``, stop.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TextIO

from batchtransform.errors import ModelError, RuntimeStartError, ValidationError
from batchtransform.runtimes.base import (
    STARTUP_TIMEOUT_ENV,
    ExecutionParameters,
    Runtime,
    RuntimeContext,
)
from batchtransform.runtimes.http import ModelServerClient

__all__ = [
    "BIND_PORT_ENV",
    "MODEL_DIR_ENV",
    "STOP_GRACE_SECONDS",
    "ProcessRuntime",
    "ServerProcess",
    "ServerRuntime",
    "free_port",
    "program_of",
]

BIND_PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
MODEL_DIR_ENV = "SM_MODEL_DIR"
STOP_GRACE_SECONDS = 5.0  # below the executor's grace, so an instance stops its server in time
PROGRAM_SCHEMES = ("process", "file")
_PLATFORM_PREFIXES = ("SAGEMAKER_", "SM_")
_KEPT_OUTPUT_LINES = 50
_EXIT_SETTLE_SECONDS = 1.0
_OUTPUT_SETTLE_SECONDS = 0.2
_QUOTED_OUTPUT_CHARS = 600
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_LOG_LOCK = threading.Lock()  # the containers of a pipeline share the instance log


def program_of(image: str) -> Path | None:
    """The program an Image names for this runtime, or None when it names no program.

    Raises ValidationError for a ``process://`` or ``file://`` Image that does not name an
    absolute path on this machine.
    """
    if image.startswith("/"):
        return Path(image)
    scheme, separator, _ = image.partition("://")
    if scheme.lower() not in PROGRAM_SCHEMES or not separator:
        return None
    parsed = urllib.parse.urlsplit(image)
    path = urllib.parse.unquote(parsed.path)
    if parsed.netloc not in ("", "localhost") or not path.startswith("/"):
        raise ValidationError(
            f"Image {image!r}: a model server program is named by its absolute path on this "
            f"machine, as {scheme}:///path/to/program (three slashes)"
        )
    return Path(path)


def free_port() -> int:
    """A loopback port free now. Another process may take it before the server binds it;
    the server then fails to start, and says so in its output."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A model server process in a process group of its own, its output pumped to ``log``.

    Start it from a thread that lives as long as it does (the instance's main thread): the
    parent death signal follows the thread that started it.
    """

    def __init__(self, log: TextIO | None, name: str = "") -> None:
        self._log, self._prefix = log, f"[{name}] " if name else ""
        self._lines: collections.deque[str] = collections.deque(maxlen=_KEPT_OUTPUT_LINES)
        self._process: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None

    def launch(self, command: list[str], environment: Mapping[str, str], cwd: Path) -> int:
        """Start ``command``; returns its process id. Raises OSError if it cannot start."""
        self._process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(environment),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_own_group_dying_with_parent,
        )
        assert self._process.stdout is not None
        self._pump = threading.Thread(
            target=self._copy_output, args=(self._process.stdout,), daemon=True
        )
        self._pump.start()
        return self._process.pid

    def exit_code(self) -> int | None:
        """The exit code once the process has ended (negative: killed by that signal)."""
        return None if self._process is None else self._process.poll()

    def ended(self, timeout: float) -> int | None:
        """The exit code if the process ends within ``timeout`` seconds, with its last output
        read; None if it goes on (a dropped connection comes before the exit is seen)."""
        process = self._process
        if process is None:
            return None
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._pump is not None:
            self._pump.join(_OUTPUT_SETTLE_SECONDS)  # a child may hold the pipe open
        return code

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def last_output(self, separator: str = "\n") -> str:
        """The end of what the process printed, at most ``_QUOTED_OUTPUT_CHARS`` long."""
        text = separator.join(list(self._lines))
        if len(text) > _QUOTED_OUTPUT_CHARS:
            return "..." + text[-_QUOTED_OUTPUT_CHARS:]
        return text or "(nothing)"

    def write(self, line: str) -> None:
        """One line in the log; a log that fails must not hide the model's own failure."""
        if self._log is None:
            return
        with _LOG_LOCK, contextlib.suppress(OSError, ValueError):
            self._log.write(f"{self._prefix}{line}\n")
            self._log.flush()

    def stop(self) -> None:
        """End the whole process group: SIGTERM, a grace period, then SIGKILL for whatever
        of the group is left (children the program started included). Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE_SECONDS)
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        if self._pump is not None:
            self._pump.join(timeout=STOP_GRACE_SECONDS)

    def _copy_output(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self._lines.append(line)
                self.write(line)


class ServerRuntime(Runtime):
    """A runtime whose model is an HTTP server started per instance (§7).

    Subclasses say how to launch the server (``_command``, ``_environment``) and what to
    call it in messages (``_what``); this class launches it on a free port, waits for
    ``/ping``, asks ``/execution-parameters``, invokes and stops it.
    """

    bounds_invocations = True  # the client's timeout

    def __init__(self, context: RuntimeContext) -> None:
        super().__init__(context)
        self._inherited = dict(os.environ)
        self._server = ServerProcess(context.log, context.name)
        self._client: ModelServerClient | None = None

    def start(self) -> None:
        """Launch the server and return once ``/ping`` answers 200; raises RuntimeStartError
        (quoting the server's last output) when it cannot start or never becomes healthy."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def execution_parameters(self) -> ExecutionParameters | None:
        """What ``GET /execution-parameters`` says; None when not provided or invalid."""
        assert self._client is not None, "start() first"
        try:
            parameters = self._client.execution_parameters()
        except ValueError as exc:
            self._server.write(f"GET /execution-parameters: invalid answer, ignored: {exc}")
            return None
        self._server.write(f"GET /execution-parameters: {parameters or 'not provided'}")
        return parameters

    def invoke(self, payload: bytes, content_type: str | None, accept: str | None) -> bytes:
        return self.invoke_with_type(payload, content_type, accept)[0]

    def invoke_with_type(
        self, payload: bytes, content_type: str | None, accept: str | None
    ) -> tuple[bytes, str | None]:
        """``POST /invocations``; a server that has died is named as such in the error."""
        client = self._client
        if client is None:
            raise ModelError(f"{self._what()} is not started, or already stopped", status=503)
        try:
            return client.invoke(payload, content_type, accept)
        except ModelError as exc:
            if exc.model_status is not None:
                raise
            code = self._server.ended(_EXIT_SETTLE_SECONDS)
            if code is None:
                raise
            raise ModelError(
                f"Unable to get response from the model: {self._what()} exited with code "
                f"{code}; its last output: {self._server.last_output(' | ')}"
            ) from exc

    def alive(self) -> bool:
        """Whether the server is started and its process still runs."""
        return self._client is not None and self._server.running()

    def stop(self) -> None:
        """Close the connections and end the server's whole process tree. Idempotent."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        self._server.stop()

    @abc.abstractmethod
    def _command(self, port: int) -> list[str]:
        """The command line that starts the server listening on ``port``."""

    @abc.abstractmethod
    def _environment(self, port: int) -> dict[str, str]:
        """The environment of that command."""

    @abc.abstractmethod
    def _what(self) -> str:
        """The server as messages name it: ``the model server /path/to/program``."""

    def _cwd(self) -> Path:
        return Path(self.context.model_dir)

    def _start(self) -> None:
        port = free_port()
        try:
            pid = self._server.launch(self._command(port), self._environment(port), self._cwd())
        except OSError as exc:
            raise RuntimeStartError(f"{self._what()} could not start: {exc}") from exc
        self._server.write(f"started {self._what()} (pid {pid}), port {port}")
        client = ModelServerClient(f"http://127.0.0.1:{port}", self.context.invocation_timeout)
        self._client = client
        problem = client.wait_until_healthy(self.context.startup_timeout, self._server.running)
        if problem is not None:
            raise self._unhealthy(problem)
        self._server.write(f"{self._what()} is healthy")

    def _unhealthy(self, problem: str) -> RuntimeStartError:
        """Why the server did not become healthy, with the end of its output."""
        code = self._server.exit_code()
        if code is not None:
            what = f"exited with code {code} before it answered GET /ping"
        else:
            what = (
                f"did not answer GET /ping with 200 within {self.context.startup_timeout:g} s "
                f"(last answer: {problem}; {STARTUP_TIMEOUT_ENV} sets how long to wait)"
            )
        output = self._server.last_output()
        return RuntimeStartError(f"{self._what()} {what}. Its last output:\n{output}")


class ProcessRuntime(ServerRuntime):
    """Runs ``<program> serve`` for an Image that names a program on this machine."""

    def __init__(self, context: RuntimeContext) -> None:
        super().__init__(context)
        program = program_of(context.image)
        if program is None:
            raise ValueError(f"Image {context.image!r} names no model server program")
        self.program = program

    def _command(self, port: int) -> list[str]:
        return [str(self.program), "serve"]

    def _environment(self, port: int) -> dict[str, str]:
        inherited = {
            key: value
            for key, value in self._inherited.items()
            if not key.startswith(_PLATFORM_PREFIXES)
        }
        return {
            **inherited,
            **self.context.environment,
            BIND_PORT_ENV: str(port),
            MODEL_DIR_ENV: str(self.context.model_dir),
        }

    def _what(self) -> str:
        return f"the model server {self.program}"

    def _start(self) -> None:
        if not self.program.is_file():
            raise RuntimeStartError(
                f"the model server program {self.program} does not exist "
                f"(Image {self.context.image!r})"
            )
        if not os.access(self.program, os.X_OK):
            raise RuntimeStartError(
                f"the model server program {self.program} is not executable; "
                f"chmod +x it (Image {self.context.image!r})"
            )
        super()._start()


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _own_group_dying_with_parent() -> None:
    """In the child, before exec: a process group of its own (so ``stop`` can end its whole
    tree) in the instance's session (so the executor finds what is left if the instance is
    killed), and SIGKILL when the thread that started it dies, where Linux offers that."""
    os.setpgid(0, 0)
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
