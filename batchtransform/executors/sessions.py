"""Process sessions: how an instance's leftovers are found after it is gone.

Each instance process leads a session of its own (``lead_session``). Whatever its model
starts (a model server, the workers that server forks, their children) stays in that
session unless it leaves on purpose, whereas it may leave its parent: a process whose
parent dies is handed to init, and its parent-death signal reaches only the first
generation. The session id outlives the instance (Linux does not hand out a number still
in use as a session id), so ``kill_session`` run after the instance's death finds every
process it left. Model servers run in process groups of their own inside the session, so
an instance can still stop one server's whole tree without stopping itself.

Sessions are read from ``/proc``; where there is none (not Linux), ``kill_session`` finds
nothing, and the model servers' own stop and parent-death signal are what is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

__all__ = ["kill_session", "lead_session", "session_members"]

_PROC = Path("/proc")
_SWEEPS = 3  # a process may fork while it is being killed; look again


def lead_session() -> None:
    """Make this process the leader of a new session (it must not lead a group already)."""
    with contextlib.suppress(OSError):  # already a session leader: nothing to do
        os.setsid()


def session_members(session: int) -> list[int]:
    """The live processes of ``session`` other than this one (zombies excluded)."""
    if not _PROC.is_dir():
        return []
    members = []
    own = os.getpid()
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        stat = _stat_fields(entry / "stat")
        # After the command's closing parenthesis: state, ppid, pgrp, session, ...
        if stat is not None and stat[0] != "Z" and stat[3] == str(session):
            members.append(int(entry.name))
    return members


def kill_session(session: int) -> int:
    """SIGKILL every process of ``session`` but this one; returns how many were killed."""
    killed: set[int] = set()
    for _ in range(_SWEEPS):
        members = session_members(session)
        if not members:
            break
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
    return len(killed)


def _stat_fields(path: Path) -> list[str] | None:
    try:
        text = path.read_text()
    except OSError:  # ended while we looked, or not ours to read
        return None
    return text.rsplit(")", 1)[-1].split()
