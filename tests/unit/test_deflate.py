"""Compressed pieces join into one gzip stream that gzip, curl and Prometheus all read."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given
from hypothesis import strategies as st

from lagwatch.serve.deflate import (
    EMPTY,
    crc32_combine,
    deflate,
    gzip_length,
    gzip_stream,
    join,
    text_stream,
)

texts = st.lists(st.binary(max_size=3000), max_size=6)


@given(st.binary(max_size=5000), st.binary(max_size=5000))
def test_combined_crcs_are_the_crc_of_the_joined_text(first: bytes, second: bytes) -> None:
    assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(
        first + second)


@given(st.lists(texts, max_size=5))
def test_pieces_join_into_one_gzip_member_of_the_texts_in_order(pieces: list[list[bytes]]
                                                               ) -> None:
    deflated = [deflate(chunks) for chunks in pieces]
    body = b"".join(gzip_stream(deflated))

    expected = b"".join(b"".join(chunks) for chunks in pieces)
    assert gzip.decompress(body) == expected
    # one member: a reader that stops after the first member still gets everything
    reader = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert reader.decompress(body) == expected and reader.eof and not reader.unused_data
    assert len(body) == gzip_length(deflated)
    assert b"".join(text_stream(deflated)) == expected


def test_an_empty_piece_adds_nothing() -> None:
    assert deflate([b"", b""]) == EMPTY
    assert gzip.decompress(b"".join(gzip_stream([EMPTY, deflate([b"a\n"]), EMPTY]))) == b"a\n"


def test_a_large_piece_is_decompressed_a_bounded_chunk_at_a_time() -> None:
    text = b"lagwatch_partition_lag_messages{cluster=\"c\"} 1\n" * 100_000  # ~4.8 MB
    chunks = list(text_stream([deflate([text])]))
    assert b"".join(chunks) == text
    assert max(len(c) for c in chunks) == 1 << 20


@given(st.lists(texts, max_size=5), texts)
def test_pieces_joined_ahead_of_time_serve_the_same_stream(pieces: list[list[bytes]],
                                                          live: list[bytes]) -> None:
    # Given the families joined once per poll, and a piece rendered at scrape time
    deflated = [deflate(chunks) for chunks in pieces]
    joined = join(deflated)
    # Then laid out after the live piece they give the same text as the pieces one by one
    expected = b"".join(live) + b"".join(b"".join(chunks) for chunks in pieces)
    body = b"".join(gzip_stream([deflate(live), joined]))
    assert gzip.decompress(body) == expected
    assert (joined.size, joined.crc) == (sum(p.size for p in deflated), zlib.crc32(
        b"".join(b"".join(chunks) for chunks in pieces)))
