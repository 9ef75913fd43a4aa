"""Scenario (d)'s model: the benchmark model behind the SageMaker HTTP contract.

Run as ``<python> model_server.py serve``: loads ``model.joblib`` from ``SM_MODEL_DIR`` and
answers /ping and /invocations on 127.0.0.1 at ``SAGEMAKER_BIND_TO_PORT``, scoring a
payload exactly as the in-process handler of the benchmark does.
"""

from __future__ import annotations

import io
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

MODEL: Any = None


def write_launcher(folder: Path) -> Path:
    """An executable that runs this server with this Python: the model's Image."""
    launcher = folder / "serve-benchmark-model"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    launcher.chmod(0o755)
    return launcher


def score(body: bytes) -> bytes:
    frame = pd.read_csv(io.BytesIO(body), header=None, dtype=np.float64, engine="c")
    scores = MODEL.predict_proba(frame.to_numpy())[:, 1]
    return ("\n".join(np.char.mod("%.6f", scores).tolist()) + "\n").encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.answer(200 if self.path == "/ping" else 404, b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(200, score(body))

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    global MODEL
    MODEL = joblib.load(Path(os.environ["SM_MODEL_DIR"]) / "model.joblib")
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
