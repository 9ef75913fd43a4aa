"""A model server for the tests: the SageMaker container contract in the standard library.

Run as ``<python> model_server.py serve`` (``write_launcher`` makes an executable that
does), it listens on 127.0.0.1 at ``SAGEMAKER_BIND_TO_PORT`` and behaves as
``MODEL_SERVER_MODE`` says:

* ``echo`` (default): each line of the body comes back as ``out:<line>``;
* ``headers``: each line comes back as ``<Content-Type>;<Accept>;<line>`` (``-`` for none);
* ``double``: each comma-separated number is doubled; the response's Content-Type is the
  Accept, else ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, else application/json;
* ``env``: the body is a JSON object of the server's environment and working directory;
* ``never-healthy``: prints that it is loading, and ``/ping`` answers 503 for ever;
* ``exit-at-start``: prints a fatal error and exits with code 3 before serving;
* ``fail-then-succeed``: the first ``MODEL_SERVER_FAILURES`` (2) invocations answer 500,
  then it echoes;
* ``bad-request``: every invocation answers 400 with a message naming the first line;
* ``hang``: invocations never answer;
* ``slow``: echoes, taking 0.2 s for each invocation;
* ``crash``: echoes, but exits at once (code 1) on a body that contains ``crash``;
* ``crash-at``: echoes, but exits at once (code 1) on its ``MODEL_SERVER_CRASH_AT``-th (3rd)
  invocation: a server that a restart brings back for a while;
* ``die-for-good``: as ``crash-at``, but only the first server of the job to get there
  (the one that creates ``MODEL_SERVER_DEATH_FILE``, writing its folder in it) exits, and a
  server started again in that folder exits at once: a model that cannot be restarted.

``GET /execution-parameters`` answers ``MODEL_SERVER_EXECUTION_PARAMETERS`` verbatim when
that is set, else 404. ``GET /stats`` answers how many connections and invocations it has
seen. With ``MODEL_SERVER_PID_FILE`` set, the server starts a child process that sleeps
and writes both process ids to that file, one a line, so that tests can check that
stopping the server ends its whole process tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODE = os.environ.get("MODEL_SERVER_MODE", "echo")
_state = {"connections": 0, "invocations": 0}
_lock = threading.Lock()
_children: list[subprocess.Popen[bytes]] = []


def write_launcher(folder: Path, name: str = "serve-model") -> Path:
    """An executable in ``folder`` that runs this server with this test's Python."""
    launcher = folder / name
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    launcher.chmod(0o755)
    return launcher


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real model servers do
    disable_nagle_algorithm = True  # else each answer waits for the client's delayed ACK

    def setup(self) -> None:
        super().setup()
        with _lock:
            _state["connections"] += 1

    def do_GET(self) -> None:
        if self.path == "/ping":
            self.answer(503 if MODE == "never-healthy" else 200, b"")
        elif self.path == "/execution-parameters":
            parameters = os.environ.get("MODEL_SERVER_EXECUTION_PARAMETERS")
            self.answer(404 if parameters is None else 200, (parameters or "").encode())
        elif self.path == "/stats":
            self.answer(200, json.dumps(_state).encode(), "application/json")
        else:
            self.answer(404, b"not found")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with _lock:
            _state["invocations"] += 1
            number = _state["invocations"]
        if self.path != "/invocations":
            self.answer(404, b"not found")
        else:
            self.answer(
                *invocation(
                    body, number, self.headers.get("Content-Type"), self.headers.get("Accept")
                )
            )

    def answer(self, status: int, body: bytes, content_type: str = "text/csv") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would drown the instance log


def invocation(
    body: bytes, number: int, content_type: str | None, accept: str | None
) -> tuple[int, bytes, str]:
    """(status, body, Content-Type) for one POST /invocations."""
    lines = body.decode().split("\n")
    if MODE == "headers":
        return (
            200,
            "".join(f"{content_type or '-'};{accept or '-'};{line}\n" for line in lines).encode(),
            "text/csv",
        )
    if MODE == "double":
        answered = (
            accept or os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "application/json"
        )
        doubled = [",".join(str(2 * int(x)) for x in line.split(",")) for line in lines]
        return 200, "\n".join(doubled).encode(), answered
    if MODE == "env":
        document = {"environment": dict(os.environ), "cwd": os.getcwd()}
        return 200, json.dumps(document).encode(), "application/json"
    if MODE == "fail-then-succeed" and number <= int(os.environ.get("MODEL_SERVER_FAILURES", "2")):
        return 500, f"transient failure {number}".encode(), "text/plain"
    if MODE == "bad-request":
        return 400, f"bad input: cannot parse {lines[0]!r}".encode(), "text/plain"
    if MODE == "hang":
        time.sleep(3600)
    if MODE == "slow":
        time.sleep(0.2)
    if MODE == "crash" and b"crash" in body:
        print("crashing on a poisoned record", flush=True)
        os._exit(1)
    if MODE in ("crash-at", "die-for-good") and number == int(
        os.environ.get("MODEL_SERVER_CRASH_AT", "3")
    ):
        crash_now(number)
    return 200, "".join(f"out:{line}\n" for line in lines).encode(), "text/csv"


def crash_now(number: int) -> None:
    """Exit at once on this invocation, unless another server of the job died for good."""
    if MODE == "die-for-good":
        try:
            fd = os.open(
                os.environ["MODEL_SERVER_DEATH_FILE"], os.O_CREAT | os.O_EXCL | os.O_WRONLY
            )
        except FileExistsError:
            return
        os.write(fd, os.getcwd().encode())
        os.close(fd)
    print(f"crashing on invocation {number}", flush=True)
    os._exit(1)


def died_here() -> bool:
    """Whether a server in this folder died for good (``die-for-good``)."""
    death = Path(os.environ.get("MODEL_SERVER_DEATH_FILE", "/nonexistent"))
    return MODE == "die-for-good" and death.exists() and death.read_text() == os.getcwd()


def start_child(pid_file: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    _children.append(child)
    pid_file.write_text(f"{os.getpid()}\n{child.pid}\n")


def main() -> None:
    if sys.argv[1:] != ["serve"]:
        sys.exit(f"usage: {sys.argv[0]} serve")
    if os.environ.get("MODEL_SERVER_PID_FILE"):
        start_child(Path(os.environ["MODEL_SERVER_PID_FILE"]))
    if died_here():
        print("fatal: this model is broken for good", file=sys.stderr, flush=True)
        sys.exit(3)
    if MODE == "exit-at-start":
        print("fatal: cannot load model weights", file=sys.stderr, flush=True)
        sys.exit(3)
    if MODE == "never-healthy":
        print("loading weights, this takes a while...", flush=True)
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"model server ({MODE}) listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
