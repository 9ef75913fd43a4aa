"""Tiny wheels built by tests, so that pip installs without reaching any index."""

from __future__ import annotations

import zipfile
from pathlib import Path


def build_wheel(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A pure-Python wheel of ``files`` (paths inside site-packages) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    metadata = {
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},,\n" for path in [*files, *metadata, f"{dist_info}/RECORD"])
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in {**files, **metadata, f"{dist_info}/RECORD": record}.items():
            archive.writestr(path, text)
    return wheel


def demo_wheel(folder: Path, version: str = "0.1.0") -> Path:
    """``btreqdemo``: ``greet(text)`` returns ``"<version>:<text>"``."""
    module = f'VERSION = "{version}"\n\n\ndef greet(text):\n    return f"{{VERSION}}:{{text}}"\n'
    return build_wheel(folder, "btreqdemo", version, {"btreqdemo/__init__.py": module})
