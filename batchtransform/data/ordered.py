"""Run model requests concurrently while keeping their results in input order.

MaxConcurrentTransforms lets several mini-batches of one object be in flight at once, yet
the output must follow the input order (reference §4.4, §6.3). ``ordered_map`` gives both,
and pulls its input lazily so at most ``concurrency`` items wait in memory at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["ordered_map"]

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], concurrency: int
) -> Generator[R, None, None]:
    """Yield ``fn(item)`` for each item, in input order, with up to ``concurrency`` calls running.

    With concurrency 1, ``fn`` runs in the caller's thread, which keeps tracebacks and
    debugging simple. Otherwise no more than ``concurrency`` items are taken from ``items``
    ahead of the result being yielded. An exception from ``fn`` (or from ``items``) comes
    out at that item's position, after the results before it; nothing further is pulled,
    and calls still running are waited for, so no thread outlives the iterator. Closing
    the generator early (``close()``) cleans up the same way.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1: {concurrency}")
    if concurrency == 1:
        return (fn(item) for item in items)
    return _pooled(fn, items, concurrency)


def _pooled(fn: Callable[[T], R], items: Iterable[T], concurrency: int) -> Generator[R, None, None]:
    source = iter(items)
    pending: deque[Future[R]] = deque()
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ordered_map")
    try:
        _submit_more(pool, fn, source, pending, concurrency)
        while pending:
            result = pending.popleft().result()
            # Refill before yielding so the pool stays busy while the caller uses the result.
            _submit_more(pool, fn, source, pending, concurrency)
            yield result
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _submit_more(
    pool: ThreadPoolExecutor,
    fn: Callable[[T], R],
    source: Iterator[T],
    pending: deque[Future[R]],
    concurrency: int,
) -> None:
    """Top ``pending`` up to ``concurrency`` futures from ``source``.

    A failure of the source itself becomes a failed future in its place, so it surfaces in
    order like a failure of ``fn``. Nothing is pulled past a known failure: the results
    after it would be thrown away.
    """
    if any(future.done() and future.exception() is not None for future in pending):
        return
    while len(pending) < concurrency:
        try:
            item = next(source)
        except StopIteration:
            return
        except Exception as exc:
            failed: Future[R] = Future()
            failed.set_exception(exc)
            pending.append(failed)
            return
        pending.append(pool.submit(fn, item))
