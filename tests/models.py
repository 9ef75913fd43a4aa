"""Model folders and archives for tests, laid out as SageMaker's model.tar.gz is."""

from __future__ import annotations

import tarfile
import textwrap
from pathlib import Path

# Handlers receive text bodies as str, as the inference toolkit passes them.

# Handlers receive text bodies as str, as the inference toolkit passes them.
_ECHO = """
def _echo(body):
    text = body.decode() if isinstance(body, bytes) else body
    return "".join(f"out:{line}\\n" for line in text.split("\\n"))
"""

# Echo each record back with a prefix, one line per record: byte-exact expected outputs.
ECHO_HANDLER = (
    _ECHO
    + """
def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    return _echo(body), accept or "text/csv"
"""
)

# Fails any mini-batch that contains the word "poison".
POISON_HANDLER = (
    _ECHO
    + """
def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    if "poison" in (body.decode() if isinstance(body, bytes) else body):
        raise ValueError("poisoned record")
    return _echo(body)
"""
)

# Takes its time, so that a stop or a kill lands while a file is half done.
SLOW_HANDLER = (
    _ECHO
    + """
import time

def model_fn(model_dir):
    return "ok"

def transform_fn(model, body, content_type, accept):
    time.sleep(0.2)
    return _echo(body)
"""
)


def write_model(folder: Path, handler: str, files: dict[str, str] | None = None) -> Path:
    """A model folder with ``code/inference.py`` holding ``handler``."""
    (folder / "code").mkdir(parents=True, exist_ok=True)
    (folder / "code" / "inference.py").write_text(textwrap.dedent(handler))
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    return folder


def tar_model(folder: Path, archive: Path) -> Path:
    """``folder`` packed as a model.tar.gz (members relative to the folder)."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return archive


def echoed(text: str) -> bytes:
    """What ECHO_HANDLER writes for a Line-split file (empty lines are not records)."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    return "".join(f"out:{line}\n" for line in lines if line).encode()
