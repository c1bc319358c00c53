"""A segment's postings file (`<name>.post`): its postings and per-article columns as flat arrays, read by
`newsflow search` with numpy instead of a DuckDB scan. No Prefect here.

Why: at a million articles a word common in a language has its postings in some 300,000 articles; DuckDB reads,
hash-joins and aggregates them in over a second per query, where numpy sums the same BM25 over the same postings in
tens of milliseconds (dense arrays indexed by an article's number in its segment, no hashing). The file holds the
same postings as the segment's `postings` table (which the SQL macro and merges still read), so a search scores
every matching article as before: exhaustive BM25, no cut-off.

Layout, little-endian, every array 8-byte aligned: a header of HEADER bytes (JSON, space-padded) naming each array's
offset, dtype and length, then the arrays:

- `doc_id` (int64, ascending): the articles of the segment; an article's number `dn` is its position here (the
  `dn` of a packed segment's `docs` and `post`);
- `doc_len`, `doc_idx` (its language group, a position in INDEXES), `doc_date` (publication else fetch date, UTC
  microseconds; NULL_DATE when none), `doc_feed` and `doc_lang` (positions in the header's `feeds` and `languages`,
  -1 for NULL), `doc_pos`, `doc_meta`, `doc_title`, `doc_text` (where its record stands in the text file);
- `key` (uint64, ascending): the distinct word keys (search_segments.term_key); `key_start` (int64, one more):
  the postings of key[i] are `post_doc[key_start[i]:key_start[i + 1]]` (article numbers, ascending) and `post_tf`.

The header's `text_codec` (absent or null in older files) says how the text file holds each text: plainly, or
packed (search_segments.pack_text: its length, then the text compressed with that codec).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

MAGIC = "newsflow-postings-1"
HEADER = 4096
NULL_DATE = np.iinfo(np.int64).min
_ALIGN = 8
_BATCH = 1_000_000


def post_file(folder: Path, name: str) -> Path:
    return folder / f"{name}.post"


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def is_packed(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether the segment open in `conn` is packed (search_segments.PACKED_STORAGE): postings by number in `post`."""
    return bool(conn.execute("select count(*) from duckdb_tables() where database_name = current_database() "
                             "and table_name = 'post'").fetchone()[0])


def write(conn: duckdb.DuckDBPyConnection, path: Path, indexes: list[str], *, text_codec: str | None = None
          ) -> None:
    """Write the postings file of the segment open in `conn` (its tables `docs`, `texts` and `postings`, the
    postings stored in (h, article_id) order; or, packed, `post` in (h, dn) order) to `path`, fsynced.
    `text_codec`: how the segment's text file holds each text (None: plainly; else search_segments.pack_text)."""
    docs = conn.execute("""
        select d.article_id, d.len, d.idx, coalesce(epoch_us(d.date), $null) as date, d.feed, d.language,
               t.pos, t.meta_bytes, t.title_bytes, t.text_bytes
        from docs d join texts t using (article_id) order by d.article_id""", {"null": int(NULL_DATE)}
                        ).fetchnumpy()
    ids = np.asarray(docs["article_id"], np.int64)
    feeds = sorted({f for f in docs["feed"].tolist() if f is not None})
    languages = sorted({x for x in docs["language"].tolist() if x is not None})
    fcode, lcode = {f: i for i, f in enumerate(feeds)}, {x: i for i, x in enumerate(languages)}
    icode = {x: i for i, x in enumerate(indexes)}
    arrays: dict[str, np.ndarray] = {
        "doc_id": ids,
        "doc_len": np.asarray(docs["len"], np.int32),
        "doc_idx": np.array([icode[x] for x in docs["idx"].tolist()], np.uint8),
        "doc_date": np.asarray(docs["date"], np.int64),
        "doc_feed": np.array([fcode.get(f, -1) if f is not None else -1 for f in docs["feed"].tolist()], np.int32),
        "doc_lang": np.array([lcode[x] if x is not None else -1 for x in docs["language"].tolist()], np.int32),
        "doc_pos": np.asarray(docs["pos"], np.int64),
        "doc_meta": np.asarray(docs["meta_bytes"], np.int32),
        "doc_title": np.asarray(docs["title_bytes"], np.int32),
        "doc_text": np.asarray(docs["text_bytes"], np.int32),
    }
    packed = is_packed(conn)
    # Of `post` itself when packed: the view `postings` would join every posting with `docs` to count them.
    total, top = conn.execute(f"select count(*), coalesce(max(tf), 0) from {'post' if packed else 'postings'}"
                              ).fetchone()
    tf_type = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
    layout: dict[str, list[object]] = {}
    at = HEADER
    layout["post_doc"] = [at, "uint32", int(total)]
    at = _aligned(at + 4 * int(total))
    layout["post_tf"] = [at, np.dtype(tf_type).name, int(total)]
    at = _aligned(at + np.dtype(tf_type).itemsize * int(total))
    keys: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    with path.open("wb") as out:
        fd = out.fileno()
        done = 0
        last: int | None = None
        # The stored order (h, article_id), read as it stands: no sort; numbers as stored, or by binary search.
        reader = conn.execute("select h, dn, tf from post" if packed else "select h, article_id, tf from postings"
                              ).fetch_record_batch(_BATCH)
        for batch in reader:
            h = batch.column(0).to_numpy()
            dn = (batch.column(1).to_numpy() if packed else np.searchsorted(ids, batch.column(1).to_numpy())
                  ).astype(np.uint32)
            tf = batch.column(2).to_numpy().astype(tf_type)
            os.pwrite(fd, dn.tobytes(), layout["post_doc"][0] + 4 * done)  # type: ignore[operator]
            os.pwrite(fd, tf.tobytes(), layout["post_tf"][0] + tf.itemsize * done)  # type: ignore[operator]
            new = np.flatnonzero(np.concatenate(([last is None or h[0] != last], h[1:] != h[:-1]))) if len(h) \
                else np.array([], np.int64)
            keys.append(h[new])
            starts.append(new + done)
            done += len(h)
            if len(h):
                last = int(h[-1])
        if done != total:
            raise RuntimeError(f"postings changed while written: {done} of {total}")
        arrays["key"] = np.concatenate(keys).astype(np.uint64) if keys else np.array([], np.uint64)
        arrays["key_start"] = np.concatenate([*starts, [done]]).astype(np.int64)
        for name, arr in arrays.items():
            layout[name] = [at, arr.dtype.name, len(arr)]
            os.pwrite(fd, np.ascontiguousarray(arr).tobytes(), at)
            at = _aligned(at + arr.nbytes)
        head = json.dumps({"magic": MAGIC, "arrays": layout, "feeds": feeds, "languages": languages,
                           "indexes": indexes, "text_codec": text_codec}, ensure_ascii=False).encode()
        extra = b""
        if len(head) > HEADER:  # many feeds or languages: the dictionaries go after the arrays
            extra = head
            head = json.dumps({"magic": MAGIC, "at": at, "bytes": len(extra)}).encode()
        os.pwrite(fd, head.ljust(HEADER, b" "), 0)
        if extra:
            os.pwrite(fd, extra, at)
        out.flush()
        os.fsync(fd)


@dataclass
class Postings:
    """A segment's postings file, mapped read-only (a merge may delete it: the mapping stays readable)."""
    ids: np.ndarray
    length: np.ndarray
    idx: np.ndarray
    date: np.ndarray
    feed: np.ndarray
    lang: np.ndarray
    pos: np.ndarray
    meta: np.ndarray
    title: np.ndarray
    text: np.ndarray
    keys: np.ndarray
    starts: np.ndarray
    docs: np.ndarray
    tfs: np.ndarray
    feeds: list[str]
    languages: list[str]
    indexes: list[str]
    text_codec: str | None = None  # how the text file holds each text (search_segments.pack_text); None: plainly

    def postings(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        """(article numbers, tf) of one key; empty when the segment lacks it."""
        i = int(np.searchsorted(self.keys, np.uint64(key)))
        if i < len(self.keys) and int(self.keys[i]) == key:
            lo, hi = int(self.starts[i]), int(self.starts[i + 1])
            return self.docs[lo:hi], self.tfs[lo:hi]
        return self.docs[:0], self.tfs[:0]


class DamagedPostingsError(ValueError):
    """A postings file that is not whole: its header unreadable, or an array past the end of the file."""


_DOC_ARRAYS = ("doc_id", "doc_len", "doc_idx", "doc_date", "doc_feed", "doc_lang", "doc_pos", "doc_meta",
               "doc_title", "doc_text")


def open_postings(path: Path) -> Postings:
    """Map a postings file (FileNotFoundError when a merge removed it; DamagedPostingsError when it is not whole)."""
    # A plain ndarray over the mapping (it keeps the mapping alive): indexing a np.memmap costs ~3 µs a call in
    # its Python __getitem__, which a phrase check makes tens of thousands of times.
    data = np.asarray(np.memmap(path, dtype=np.uint8, mode="r")) if path.stat().st_size else np.zeros(0, np.uint8)
    try:
        head = json.loads(bytes(data[:HEADER]).decode())
        if "at" in head:
            head = json.loads(bytes(data[head["at"]:head["at"] + head["bytes"]]).decode())
        if head.get("magic") != MAGIC:
            raise DamagedPostingsError("not a postings file")
        arrays = {name: _array(data, *head["arrays"][name])
                  for name in (*_DOC_ARRAYS, "key", "key_start", "post_doc", "post_tf")}
        postings = Postings(*arrays.values(), head["feeds"], head["languages"], head["indexes"],
                            head.get("text_codec"))
    except (ValueError, KeyError, TypeError) as exc:  # a file cut short or overwritten: JSON, bounds, layout
        raise DamagedPostingsError(f"{path}: {exc}") from exc
    # Sizes that must agree, so a search never indexes past an array (cheap: lengths only).
    docs = {len(arrays[name]) for name in _DOC_ARRAYS}
    n_post = len(arrays["post_doc"])
    if len(docs) != 1 or len(arrays["key_start"]) != len(arrays["key"]) + 1 or len(arrays["post_tf"]) != n_post \
            or int(arrays["key_start"][-1]) != n_post:
        raise DamagedPostingsError(f"{path}: its arrays' lengths disagree")
    return postings


def text_end(post: Postings) -> int:
    """Where the last record the postings point at ends in the segment's text file: the least size it can have."""
    if not len(post.pos):
        return 0
    return int((post.pos + post.meta.astype(np.int64) + post.title + post.text).max())


def _array(data: np.ndarray, at: int, dtype: str, n: int) -> np.ndarray:
    size = np.dtype(dtype).itemsize * n
    if at < HEADER or n < 0 or at + size > len(data):
        raise DamagedPostingsError(f"an array of {size} bytes at {at} does not fit in {len(data)} bytes")
    return data[at:at + size].view(dtype)
