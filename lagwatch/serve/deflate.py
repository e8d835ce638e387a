"""Compressed pieces of text that join into one gzip stream without recompressing.

/metrics keeps each cluster's share of each family compressed (a Piece), and a scrape lays
the pieces out in family order. A piece is raw deflate ended by a sync flush, so it stops on
a byte boundary with no final-block bit, and any sequence of pieces is a valid deflate
stream. The gzip trailer needs the CRC-32 of the whole text, which is combined from the
pieces' own CRCs (zlib's crc32_combine, which Python's zlib does not expose).

One gzip member, not one member per piece: curl --compressed, among others, stops reading at
the end of the first member.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

LEVEL = 1  # ~9x faster than the default level on exposition text, for ~15% more bytes
_GZIP_HEADER = bytes((0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255))  # deflate, no name, no mtime
_FINAL_BLOCK = b"\x03\x00"  # an empty fixed-Huffman block with the final bit set
_OUT_CHUNK = 1 << 20  # bytes of text per chunk when a piece is decompressed for a client


@dataclass(frozen=True)
class Piece:
    """Some text, deflated; ``crc`` and ``size`` describe the text before compression."""

    data: bytes
    crc: int
    size: int


EMPTY = Piece(b"", 0, 0)


def deflate(chunks: Iterable[bytes]) -> Piece:
    """Compress the chunks into one piece."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    out: list[bytes] = []
    crc = size = 0
    for chunk in chunks:
        out.append(compressor.compress(chunk))
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
    if not size:
        return EMPTY
    out.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    return Piece(b"".join(out), crc, size)


def join(pieces: Iterable[Piece]) -> Piece:
    """One piece holding the pieces in order: its CRC combined once, so a scrape that lays
    it out does not combine them all again."""
    data, crc, size = [], 0, 0
    for piece in pieces:
        if piece.size:
            data.append(piece.data)
            crc = crc32_combine(crc, piece.crc, piece.size)
            size += piece.size
    return Piece(b"".join(data), crc, size) if size else EMPTY


def gzip_length(pieces: list[Piece]) -> int:
    """The byte length of gzip_stream(pieces)."""
    return len(_GZIP_HEADER) + sum(len(p.data) for p in pieces) + len(_FINAL_BLOCK) + 8


def gzip_stream(pieces: list[Piece]) -> Iterator[bytes]:
    """Yield the pieces as one gzip member."""
    yield _GZIP_HEADER
    crc = size = 0
    for piece in pieces:
        if piece.size:
            yield piece.data
            crc = crc32_combine(crc, piece.crc, piece.size)
            size += piece.size
    yield _FINAL_BLOCK + crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")


def text_stream(pieces: list[Piece]) -> Iterator[bytes]:
    """Yield the pieces' text, decompressed a bounded chunk at a time."""
    for piece in pieces:
        if not piece.size:
            continue
        decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        data = piece.data
        while data:
            yield decompressor.decompress(data, _OUT_CHUNK)
            data = decompressor.unconsumed_tail


# CRC-32 combination, after zlib's crc32.c: polynomials over GF(2), reflected, with x^0 in
# the top bit. Combining two CRCs is multiplying the first by x^(8 * len2) modulo the
# CRC polynomial and adding the second.
_POLY = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    """a(x) * b(x) modulo p(x)."""
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _powers() -> list[int]:
    table = [1 << 30]  # x^1
    for _ in range(31):
        table.append(_multmodp(table[-1], table[-1]))
    return table  # table[k] is x^(2^k)


_X2N = _powers()


def _x2nmodp(n: int, k: int) -> int:
    """x^(n * 2^k) modulo p(x)."""
    p = 1 << 31  # x^0
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return p


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of A + B, from A's CRC, B's CRC and B's length."""
    return _multmodp(_x2nmodp(len2, 3), crc1) ^ crc2
