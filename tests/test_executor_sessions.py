"""Sessions: what a dead instance left behind is found and killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from lifecycle import alive

from batchtransform.executors.sessions import kill_session, session_members

# Starts a child that starts a grandchild, each sleeping; prints both ids.
_TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", (
    "import subprocess, sys, time; "
    "g = subprocess.Popen(['sleep', '60']); print(g.pid, flush=True); time.sleep(60)"
)], stdout=subprocess.PIPE)
print(child.pid, child.stdout.readline().decode().strip(), flush=True)
time.sleep(60)
"""


def test_what_a_dead_session_leader_left_is_killed() -> None:
    leader = subprocess.Popen(
        [sys.executable, "-c", _TREE], stdout=subprocess.PIPE, start_new_session=True
    )
    assert leader.stdout is not None
    child, grandchild = map(int, leader.stdout.readline().split())
    leader.stdout.close()
    try:
        assert sorted(session_members(leader.pid)) == sorted([leader.pid, child, grandchild])
        leader.send_signal(signal.SIGKILL)
        time.sleep(0.1)  # dead, not yet reaped: its number is still the session's
        assert kill_session(leader.pid) == 2
    finally:
        leader.kill()
        leader.wait()
    deadline = time.monotonic() + 10
    while alive(child) or alive(grandchild):
        assert time.monotonic() < deadline, "the leader's descendants are still running"
        time.sleep(0.05)
    assert session_members(leader.pid) == []
