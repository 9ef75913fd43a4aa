"""A TCP proxy in front of an S3 server that holds back the answer to chosen requests, so a
stop can be made to land while an output's commit has reached the store but its writer is
still waiting for the answer."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class AnswerDelayProxy:
    """Forwards 127.0.0.1 connections to ``target_port``; on a connection that has sent a
    request containing ``marker`` (``PUT /bucket/out/``), the next final answer is held
    back ``delay`` seconds (a ``100 Continue`` goes through, or the body would never come).
    ``seen`` is set once such a request has gone through."""

    def __init__(self, target_port: int, marker: bytes, delay: float) -> None:
        self.target_port, self.marker, self.delay = target_port, marker, delay
        self.seen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self._closed = False

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._spawn(self._accept)

    def stop(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.listener.close()
        for sock in list(self.sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in list(self.threads):
            thread.join(timeout=10)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            held = threading.Event()
            self._spawn(self._requests, client, upstream, held)
            self._spawn(self._answers, upstream, client, held)

    def _requests(self, source: socket.socket, sink: socket.socket, held: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if self.marker in data:
                    held.set()
                    self.seen.set()
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _answers(self, source: socket.socket, sink: socket.socket, held: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if held.is_set() and not data.startswith(b"HTTP/1.1 100"):  # not "go on"
                    time.sleep(self.delay)
                    held.clear()
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
