"""ordered_map: concurrent calls, results in input order, lazy input, clean failure and close."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from batchtransform.data.ordered import ordered_map


class Source:
    """An input that counts how many items have been taken from it."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.pulled = 0

    def __iter__(self) -> Iterator[int]:
        for item in range(self.count):
            if item == self.fail_at:
                raise LookupError(f"source broke at {item}")
            self.pulled += 1
            yield item


class Boom(Exception):
    pass


def pool_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("ordered_map")]


def jittery_double(item: int) -> int:
    time.sleep(random.Random(item).uniform(0, 0.005))
    return item * 2


@pytest.mark.parametrize("concurrency", [1, 2, 4, 8])
def test_results_keep_input_order(concurrency: int):
    assert list(ordered_map(jittery_double, range(40), concurrency)) == [i * 2 for i in range(40)]
    assert pool_threads() == []


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_takes_at_most_concurrency_items_ahead(concurrency: int):
    source = Source(20)
    for position, _result in enumerate(ordered_map(jittery_double, source, concurrency), 1):
        assert position <= source.pulled <= position + concurrency


def test_calls_really_overlap():
    barrier = threading.Barrier(4, timeout=30)

    def meet(item: int) -> int:
        barrier.wait()  # breaks (and raises) unless four calls are running at once
        return item

    assert list(ordered_map(meet, range(8), 4)) == list(range(8))


def test_concurrency_one_runs_in_the_callers_thread():
    threads = list(ordered_map(lambda _: threading.current_thread(), range(3), 1))
    assert threads == [threading.current_thread()] * 3


@pytest.mark.parametrize("concurrency", [1, 4])
def test_fn_error_comes_out_at_its_position(concurrency: int):
    source = Source(50)
    calls: list[int] = []

    def fail_at_five(item: int) -> int:
        calls.append(item)
        if item == 5:
            raise Boom(item)
        return jittery_double(item)

    results = ordered_map(fail_at_five, source, concurrency)
    received = []
    with pytest.raises(Boom):
        for result in results:
            received.append(result)
    assert received == [0, 2, 4, 6, 8]
    assert source.pulled <= 6 + concurrency
    assert max(calls) < 6 + concurrency
    assert pool_threads() == []
    assert list(results) == []


@pytest.mark.parametrize("concurrency", [1, 4])
def test_source_error_comes_out_at_its_position(concurrency: int):
    received = []
    with pytest.raises(LookupError, match="source broke at 5"):
        for result in ordered_map(jittery_double, Source(50, fail_at=5), concurrency):
            received.append(result)
    assert received == [0, 2, 4, 6, 8]
    assert pool_threads() == []


@pytest.mark.parametrize("concurrency", [1, 4])
def test_closing_early_stops_pulling_and_leaves_no_threads(concurrency: int):
    source = Source(1000)
    finished: list[int] = []

    def slow(item: int) -> int:
        time.sleep(0.002)
        finished.append(item)
        return item

    results = ordered_map(slow, source, concurrency)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    results.close()
    pulled = source.pulled
    assert pulled <= 3 + concurrency
    assert pool_threads() == []
    # Calls in flight at close were waited for; nothing started afterwards.
    finished_at_close = list(finished)
    assert list(results) == []
    assert source.pulled == pulled
    assert finished == finished_at_close
    assert set(finished) <= set(range(pulled))


@pytest.mark.parametrize("concurrency", [0, -1])
def test_concurrency_must_be_positive(concurrency: int):
    with pytest.raises(ValueError, match="concurrency"):
        ordered_map(str, [1], concurrency)
