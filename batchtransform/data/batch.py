"""Pack the records of one object into mini-batches, one per model request.

SageMaker's BatchStrategy (reference §4.3): ``SingleRecord`` sends each record alone;
``MultiRecord`` greedily packs consecutive records while the payload, separators included,
stays within MaxPayloadInMB. The limit is measured on the bytes actually sent. A record that
cannot fit in any request fails the object rather than being sent oversized.
"""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate, chain

from batchtransform.data.framing import describe_limit
from batchtransform.errors import DataError

__all__ = ["Batch", "batch_blocks", "batch_records", "in_blocks"]

_BLOCK = 1024  # records per block when records come one at a time

_STRATEGIES = ("SingleRecord", "MultiRecord")


@dataclass(frozen=True)
class Batch:
    """One request body and which records it carries, so errors and outputs can name them.

    ``first_record`` is the 1-based number of its first record within the object, and
    ``count`` how many consecutive records it holds.
    """

    payload: bytes
    first_record: int
    count: int


def batch_records(
    records: Iterable[bytes], strategy: str, max_payload_bytes: int, separator: bytes
) -> Iterator[Batch]:
    """Yield the mini-batches of ``records`` for a BatchStrategy, in order.

    ``max_payload_bytes`` 0 means no limit: MultiRecord then puts every record in one batch.
    ``separator`` joins records in a MultiRecord payload (see ``record_separator``). Bad
    settings raise ValueError when called; an oversized record raises DataError when reached.
    """
    return batch_blocks(in_blocks(records), strategy, max_payload_bytes, separator)


def in_blocks(records: Iterable[bytes]) -> Iterator[list[bytes]]:
    """Consecutive records in lists, for the stages that work a list at a time."""
    block: list[bytes] = []
    for record in records:
        block.append(record)
        if len(block) == _BLOCK:
            yield block
            block = []
    if block:
        yield block


def batch_blocks(
    blocks: Iterable[list[bytes]], strategy: str, max_payload_bytes: int, separator: bytes
) -> Iterator[Batch]:
    """``batch_records`` for records that come in lists (``split.split_blocks``).

    The batches are the same; packing a list at a time finds each cut with a binary search
    over the running payload sizes, so the work per record happens in C.
    """
    if strategy not in _STRATEGIES:
        raise ValueError(f"unknown BatchStrategy {strategy!r}; expected one of {_STRATEGIES}")
    if max_payload_bytes < 0:
        raise ValueError(f"max_payload_bytes must be 0 (unlimited) or more: {max_payload_bytes}")
    if strategy == "SingleRecord":
        return _single_records(chain.from_iterable(blocks), max_payload_bytes)
    return _MultiRecordPacker(max_payload_bytes, separator).pack(blocks)


def _single_records(records: Iterable[bytes], limit: int) -> Iterator[Batch]:
    for number, record in enumerate(records, start=1):
        _check_fits(record, number, limit)
        yield Batch(record, number, 1)


class _MultiRecordPacker:
    """Greedy packing: the first record that would overflow the payload starts the next one.

    ``ends[k]`` is the wire size of a block's first k records, one separator after each, so
    records i..j-1 added to a batch of ``size`` bytes make ``size + ends[j] - ends[i]``
    (one separator fewer when the batch was empty). Parts are joined once per batch.
    """

    def __init__(self, limit: int, separator: bytes) -> None:
        self.limit, self.separator = limit, separator
        self.parts: list[bytes] = []
        self.size = 0  # len(separator.join(parts))
        self.first = 1  # number of the batch's first record
        self.seen = 0  # records before the current block

    def pack(self, blocks: Iterable[list[bytes]]) -> Iterator[Batch]:
        for block in blocks:
            _check_block_fits(block, self.seen, self.limit)
            if self.limit:
                yield from self._pack_block(block)
            else:
                self.parts.extend(block)
            self.seen += len(block)
        if self.parts:
            yield self._batch()

    def _pack_block(self, block: list[bytes]) -> Iterator[Batch]:
        step = len(self.separator)
        ends = list(accumulate(map(len, block), initial=0))
        if step:
            ends = list(map(operator.add, ends, range(0, step * len(ends), step)))
        start, count = 0, len(block)
        while start < count:
            room = self.limit - self.size if self.parts else self.limit + step
            stop = bisect_right(ends, room + ends[start], start, count + 1) - 1
            if stop > start:
                added = ends[stop] - ends[start]
                self.size = self.size + added if self.parts else added - step
                self.parts.extend(block[start:stop])
                start = stop
            if start < count:  # the next record does not fit: this batch is full
                yield self._batch()
                self.first = self.seen + start + 1

    def _batch(self) -> Batch:
        batch = Batch(self.separator.join(self.parts), self.first, len(self.parts))
        self.parts, self.size = [], 0
        return batch


def _check_block_fits(block: list[bytes], seen: int, limit: int) -> None:
    if limit and block and max(map(len, block)) > limit:
        index = next(i for i, record in enumerate(block) if len(record) > limit)
        _check_fits(block[index], seen + index + 1, limit)


def _check_fits(record: bytes, number: int, limit: int) -> None:
    if limit and len(record) > limit:
        raise DataError(
            f"record is {len(record)} bytes, larger than {describe_limit(limit)}; a record "
            f"must fit in one request",
            record=number,
        )
