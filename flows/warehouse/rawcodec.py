"""How raw HTML is compressed for the archive: zstd now, zlib in pages written before.

A worker compresses each page once; the archive stores the bytes as they are and records the codec in its
`encoding` column, so older zlib pages stay readable beside newer zstd ones. zstd level 1 (pyarrow's codec,
already a dependency) took 0.7 ms per benchmark page against zlib level 1's 2.5 ms, and is 17% smaller; the level
is now 5 (LEVEL). Any level decodes the same way, so pages written at level 1 need nothing.
"""

from __future__ import annotations

import zlib

import pyarrow as pa

# Chosen on half the fundus publishers' real pages, reported on the other half (benchmarks/raw_codec.py,
# docs/benchmarks.md): the smallest archive whose compression stays within 5% of a page's extraction CPU. Level 5 is
# 13% smaller than level 1 on the publishers it was not chosen on, for about 1.2 ms more CPU a page.
LEVEL = 5
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # every zstd frame starts with it; a zlib stream starts with 0x78


_CODEC = pa.Codec("zstd", compression_level=LEVEL)


def compress(body: bytes) -> bytes:
    return _CODEC.compress(body, asbytes=True)


def encoding_of(blob: bytes) -> str:
    """The codec of a compressed page, told from its first bytes (staged batches of older versions hold zlib)."""
    return "zstd" if blob[:4] == ZSTD_MAGIC else "zlib"


def decode(encoding: str, blob: bytes) -> bytes:
    """The bytes served, from a page compressed with `encoding`."""
    if encoding == "zstd":
        # A stream: the frame's content size need not be known up front.
        return pa.CompressedInputStream(pa.py_buffer(blob), "zstd").read()
    if encoding == "zlib":
        return zlib.decompress(blob)
    raise ValueError(f"unknown raw HTML encoding {encoding!r}")
