"""read_ahead: the same items in the same order, errors in place, and no thread left behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from batchtransform.data.readahead import read_ahead


def test_items_come_in_order() -> None:
    assert list(read_ahead(iter(range(1000)), depth=3)) == list(range(1000))


def test_an_empty_source_ends_at_once() -> None:
    assert list(read_ahead(iter([]))) == []


def test_items_are_produced_on_another_thread() -> None:
    def source() -> Iterator[str]:
        yield threading.current_thread().name

    (name,) = read_ahead(source())
    assert name != threading.current_thread().name


def test_an_error_comes_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("record 3 is bad")

    stream = read_ahead(source())
    assert next(stream) == 1
    assert next(stream) == 2
    with pytest.raises(ValueError, match="record 3 is bad"):
        next(stream)


def test_the_producer_stays_at_most_depth_items_ahead() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for number in range(100):
            produced.append(number)
            yield number

    stream = read_ahead(source(), depth=2)
    assert next(stream) == 0
    time.sleep(0.3)  # time enough to run far ahead, were it not bounded
    # one taken, two waiting in the queue, one held by the producer waiting for room
    assert len(produced) <= 4
    stream.close()


def test_closing_early_stops_the_producer_and_closes_the_source() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    before = threading.active_count()
    stream = read_ahead(source())
    assert next(stream) == 0
    stream.close()
    assert closed.is_set(), "the source's finally ran before close() returned"
    assert threading.active_count() == before


def test_a_failing_consumer_still_stops_the_producer() -> None:
    before = threading.active_count()
    with pytest.raises(RuntimeError):
        for item in read_ahead(iter(range(1_000_000))):
            if item == 5:
                raise RuntimeError("the model failed")
    assert threading.active_count() == before


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        read_ahead(iter([1]), depth=0)
