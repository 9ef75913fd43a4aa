"""A private network namespace for the tests that run Ray.

Ray binds its servers to every interface, so its tests run where the only interface is a
loopback of their own: this thread of the test process moves into a new network namespace
(``unshare(CLONE_NEWNET)``, root only, as CI runs) with ``lo`` up, and every process it
starts from then on (the Ray nodes, the jobs' controllers and so the Ray actors) is born
there. Leaving moves the thread back; the namespace goes when its last process does.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Iterator

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sH14x"
_LIBC = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def private_network() -> Iterator[None]:
    """Run the body (and whatever it starts) in a network namespace with only ``lo``."""
    assert threading.current_thread() is threading.main_thread(), "namespaces are per thread"
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _call(_LIBC.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET), which needs root")
        _loopback_up()
        yield
    finally:
        _call(_LIBC.setns(original, _CLONE_NEWNET), "setns back to the original network")
        os.close(original)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(_IFREQ, b"lo", 0)
        flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def _call(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def interfaces() -> list[str]:
    """The network interfaces this thread sees (a private namespace has only ``lo``)."""
    return [name for _, name in socket.if_nameindex()]
