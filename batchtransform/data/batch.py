"""Pack the records of one object into mini-batches, one per model request.

SageMaker's BatchStrategy (reference §4.3): ``SingleRecord`` sends each record alone;
``MultiRecord`` greedily packs consecutive records while the payload, separators included,
stays within MaxPayloadInMB. The limit is measured on the bytes actually sent. A record that
cannot fit in any request fails the object rather than being sent oversized.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from batchtransform.data.split import describe_limit
from batchtransform.errors import DataError

__all__ = ["Batch", "batch_records"]

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
    if strategy not in _STRATEGIES:
        raise ValueError(f"unknown BatchStrategy {strategy!r}; expected one of {_STRATEGIES}")
    if max_payload_bytes < 0:
        raise ValueError(f"max_payload_bytes must be 0 (unlimited) or more: {max_payload_bytes}")
    if strategy == "SingleRecord":
        return _single_records(records, max_payload_bytes)
    return _multi_records(records, max_payload_bytes, separator)


def _single_records(records: Iterable[bytes], limit: int) -> Iterator[Batch]:
    for number, record in enumerate(records, start=1):
        _check_fits(record, number, limit)
        yield Batch(record, number, 1)


def _multi_records(records: Iterable[bytes], limit: int, separator: bytes) -> Iterator[Batch]:
    """Greedy packing: the first record that would overflow the payload starts the next one.

    Parts are collected and joined once per batch, so packing stays linear in the bytes.
    """
    parts: list[bytes] = []
    size = 0  # len(separator.join(parts))
    first = 1
    for number, record in enumerate(records, start=1):
        _check_fits(record, number, limit)
        grown = size + len(separator) + len(record) if parts else len(record)
        if parts and limit and grown > limit:
            yield Batch(separator.join(parts), first, len(parts))
            parts, first, grown = [], number, len(record)
        parts.append(record)
        size = grown
    if parts:
        yield Batch(separator.join(parts), first, len(parts))


def _check_fits(record: bytes, number: int, limit: int) -> None:
    if limit and len(record) > limit:
        raise DataError(
            f"record is {len(record)} bytes, larger than {describe_limit(limit)}; a record "
            f"must fit in one request",
            record=number,
        )
