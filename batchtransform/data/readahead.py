"""Produce the next items of a stream on a thread of their own while the caller uses these.

With MaxConcurrentTransforms 1 an instance would otherwise alternate: cut a mini-batch,
wait for the model, write the response, cut the next one. Reading, decompressing and
cutting batches are I/O and C loops, and the model's own work (a CSV parser, a matrix
product) mostly runs without the GIL, so on a machine with a core to spare the two overlap
and the model is never kept waiting for its next payload. Order is unchanged, and at most
``depth`` items wait ready, so memory stays bounded by the payload limit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import Generic, TypeVar

__all__ = ["read_ahead"]

T = TypeVar("T")

_WAKE_SECONDS = 0.1  # how often a blocked producer looks whether it was told to stop


def read_ahead(items: Iterable[T], depth: int = 1) -> Generator[T, None, None]:
    """Yield ``items`` in order, produced on a background thread up to ``depth`` ahead.

    An exception from ``items`` comes out at its position, after the items before it.
    Closing the generator early stops the producer and waits for it, so no thread (and no
    open input) outlives the iteration; the producer finishes at most the item it is in.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1: {depth}")
    return _ReadAhead(items, depth).run()


class _End:
    """The marker after the last item, carrying the source's exception if it had one."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _ReadAhead(Generic[T]):
    def __init__(self, items: Iterable[T], depth: int) -> None:
        self.items = items
        self.ready: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._produce, name="read-ahead", daemon=True)

    def run(self) -> Generator[T, None, None]:
        self.thread.start()
        try:
            while not isinstance(item := self.ready.get(), _End):
                yield item
            if item.error is not None:
                raise item.error
        finally:
            self.stopping.set()
            self.thread.join()

    def _produce(self) -> None:
        source = iter(self.items)
        end = _End()
        try:
            for item in source:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there in order
            end = _End(exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # an abandoned generator releases its input here, not at GC
        self._put(end)

    def _put(self, item: T | _End) -> bool:
        """Queue ``item`` once there is room; False if the consumer stopped meanwhile."""
        while not self.stopping.is_set():
            try:
                self.ready.put(item, timeout=_WAKE_SECONDS)
                return True
            except queue.Full:
                continue
        return False
