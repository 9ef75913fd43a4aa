"""Undo the input's CompressionType before records are split.

SageMaker gunzips each object (``CompressionType=Gzip``) before splitting it. We stream the
decompression so a large object never sits in memory whole, and we decode every member of a
multi-member gzip file (what ``cat a.gz b.gz`` or ``pigz`` produce), as the reference
recommends, instead of silently stopping after the first.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

from batchtransform.errors import DataError

__all__ = ["decompress"]

# zlib's window bits for "gzip header and trailer only" (16 + 15).
_GZIP_WBITS = 31
# Upper bound on one decompressed piece, so a highly compressed chunk cannot balloon into
# a single huge bytes object.
_MAX_PIECE = 1024 * 1024


def decompress(chunks: Iterable[bytes], compression: str) -> Iterator[bytes]:
    """Yield the decompressed bytes of ``chunks`` for a CompressionType (``None`` or ``Gzip``).

    Checked when called, not when iterated, so a bad setting fails before any data is read.
    Corrupt or truncated gzip raises DataError whose ``offset`` is in the compressed bytes:
    where the damage was noticed, which with large chunks is the start of the chunk.
    """
    if compression == "None":
        return _passthrough(chunks)
    if compression == "Gzip":
        return _gunzip(chunks)
    raise ValueError(f"unknown CompressionType {compression!r}; expected 'None' or 'Gzip'")


def _passthrough(chunks: Iterable[bytes]) -> Iterator[bytes]:
    yield from chunks


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decode gzip member after member; a new decoder starts wherever the last one ended.

    Zero bytes between or after members are skipped, as Python's gzip module does, since
    tape-style padding is legal. An empty input is zero members and yields nothing.
    """
    decoder = zlib.decompressobj(_GZIP_WBITS)
    started = False  # has the current decoder been fed any byte?
    members = 0
    offset = 0  # compressed offset of the first byte of ``data``
    for chunk in chunks:
        data = chunk
        while data:
            if not started and members:
                stripped = data.lstrip(b"\0")
                offset += len(data) - len(stripped)
                data = stripped
                if not data:
                    break
            started = True
            yield from _inflate(decoder, data, offset)
            if decoder.eof:
                rest = decoder.unused_data
                offset += len(data) - len(rest)
                data = rest
                members += 1
                decoder = zlib.decompressobj(_GZIP_WBITS)
                started = False
            else:
                offset += len(data)
                data = b""
    if started:
        raise DataError(
            f"input is not valid gzip: it ends inside a gzip member, after {offset} "
            f"compressed bytes; the file looks truncated",
            offset=offset,
        )


def _inflate(decoder: zlib._Decompress, data: bytes, offset: int) -> Iterator[bytes]:
    """Feed ``data`` (which starts at compressed ``offset``) to ``decoder``, output in pieces.

    zlib keeps pending output when a piece fills up, so we keep asking until a piece comes
    back short and no input is left.
    """
    while True:
        try:
            piece = decoder.decompress(data, _MAX_PIECE)
        except zlib.error as exc:
            raise DataError(
                f"input is not valid gzip ({exc}); found while decoding the compressed bytes "
                f"from offset {offset}",
                offset=offset,
            ) from exc
        if piece:
            yield piece
        tail = decoder.unconsumed_tail
        offset += len(data) - len(tail)
        data = tail
        if decoder.eof or (not data and len(piece) < _MAX_PIECE):
            return
