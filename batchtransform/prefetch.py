"""Inputs of small objects fetched ahead of their turn, while the instance works on another.

Per object, a job over many small objects pays a store round trip to read each input and
another to write each output. The executor hands an instance its next small objects while
the current one runs (``executors.local``); the worker gives each to ``Prefetcher.start``,
which reads it whole on a thread (a few at once), so that when its turn comes its bytes
are there. What a fetch raises (a missing object, a store failure) is raised where the worker
takes the bytes, as reading there would have.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from batchtransform import objects
from batchtransform.plan import WorkItem

__all__ = ["Prefetcher"]


# Reads under way at once, so that each store round trip overlaps the others instead of
# queueing behind them; an instance holds more objects (``executors.base.SMALL_AHEAD``),
# whose uploads go on meanwhile.
_THREADS = 4


class Prefetcher:
    """Whole small inputs read in the background, several at a time."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._fetched: dict[tuple[int, str], Future[bytes]] = {}
        self._lock = threading.Lock()

    def start(self, item: WorkItem) -> None:
        """Begin reading ``item``'s input, if it is a small whole object (from any thread)."""
        if not item.small:
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="prefetch")
            key = (item.index, item.input_url)
            if key not in self._fetched:
                self._fetched[key] = self._pool.submit(objects.read_bytes, item.input_url)

    def chunks(self, item: WorkItem) -> Iterator[bytes] | None:
        """``item``'s input as chunks if it was fetched ahead (once: a rerun reads again),
        else None."""
        with self._lock:
            fetched = self._fetched.pop((item.index, item.input_url), None)
        return None if fetched is None else _result(fetched)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self._fetched.clear()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _result(fetched: Future[bytes]) -> Iterator[bytes]:
    data = fetched.result()
    if data:
        yield data
