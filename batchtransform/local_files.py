"""Local files put together into one, for ``objects.concatenate``: the first file grows into
the output, so only the others are copied, in the kernel where it can."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from typing import BinaryIO

__all__ = ["concatenate_files"]


def concatenate_files(path: str, sources: list[str]) -> None:
    """Make ``path`` the files ``sources`` one after the other, all or nothing; the sources
    are consumed (the first is renamed, the others stay for the caller to remove). Until
    the final rename the output is a ``.<name>.<hex>.partial`` sibling, which
    ``objects.remove_partials`` clears if this process dies."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.partial")
    os.rename(sources[0], temporary)
    try:
        with open(temporary, "r+b", buffering=0) as output:
            output.seek(0, os.SEEK_END)
            for source in sources[1:]:
                with open(source, "rb", buffering=0) as part:
                    _copy_file(part, output)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _copy_file(source: BinaryIO, target: BinaryIO) -> None:
    """Append ``source`` to ``target``: ``copy_file_range``, or through user space on a
    filesystem without it."""
    target.flush()
    copied = 0
    try:
        while count := os.copy_file_range(source.fileno(), target.fileno(), 1 << 30):
            copied += count
    except OSError:
        if copied:
            raise
        shutil.copyfileobj(source, target, 1 << 20)
