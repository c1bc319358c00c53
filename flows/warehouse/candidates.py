"""The one implementation of dedup's candidate lookup and ranking, used by the loader, the pre-check (both
through `writer.decide`) and `reprocess`, so a re-decision after a threshold change gives what a fresh ingest would.

Candidates come from the warehouse index (same text hash, a shared LSH bucket, or enough shared sampled
shingles); each is then verified exactly on its re-shingled text (flows/text/dedup.py `compare`).

The index also records which signature method and settings built it (`dedup_index`), so a change of settings
without `newsflow reprocess --step dedup` shows as a failing check rather than silently missed copies.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from flows.core.sections import DedupSettings
from flows.text import dedup
from flows.text.dedup import Match, Signature
from flows.warehouse import keycache, memorylimit
from flows.warehouse.database import query

_BUCKETS = pa.schema([("doc", pa.int64()), ("key", pa.int64())])
_SAMPLES = pa.schema([("doc", pa.int64()), ("hash", pa.int64()), ("n_samples", pa.int64())])
_CACHED = pa.schema([("doc", pa.int64()), ("article_id", pa.int64())])


# Bump when flows/text/dedup.py signs differently with the same settings (hashing, shingling, banding), so stored
# indexes built the old way are reported stale. v3 (issue 22): signed by sentence whatever the line breaks, chrome left
# out by sentence instead of by short line.
INDEX_METHOD = "minhash-lsh+lede-sample+sentences/v3"
# The settings that decide which rows an article puts in the index (thresholds only act on the lookup).
_INDEX_SETTINGS = ("shingle_size", "num_perm", "bands", "min_shingles", "min_sentence_words", "sample_mod",
                   "sample_lede_words", "sample_tail_mod")
bucket_keys = dedup.bucket_keys


def index_rows(article_id: int, buckets: Iterable[int], samples: Iterable[int], seq: int
               ) -> tuple[list[dict[str, int]], list[dict[str, int]]]:
    """The `lsh_buckets` and `shingle_samples` rows of one stored article, written by load `seq` (next_seq)."""
    keys = bucket_keys(np.fromiter(buckets, dtype=np.int64))
    return ([{"key": k, "article_id": article_id, "seq": seq} for k in keys.tolist()],
            [{"hash": int(h), "article_id": article_id, "seq": seq} for h in samples])


def next_seq(conn: duckdb.DuckDBPyConnection, settings: DedupSettings) -> int:
    """The load sequence number for the index rows this transaction adds (the index record is made first)."""
    record_index(conn, settings)
    conn.execute(query("dedup_index_next_seq"))
    state = keycache.index_state(conn)
    assert state is not None
    return state.seq


def index_params(settings: DedupSettings) -> str:
    """The settings that built an index, as canonical JSON (what `dedup_index.params` holds)."""
    return json.dumps({k: getattr(settings, k) for k in _INDEX_SETTINGS}, sort_keys=True, separators=(",", ":"))


def check_params(settings: DedupSettings) -> dict[str, Any]:
    """The parameters of warehouse/checks/dedup_index_stale.sql."""
    return {"dedup_method": INDEX_METHOD, "dedup_params": index_params(settings)}


def record_index(conn: duckdb.DuckDBPyConnection, settings: DedupSettings, *, rebuilt: bool = False) -> None:
    """Record the current method as the index's builder: only into an empty record (the first load), or over
    any record when every stored article was just re-signed (`rebuilt`, reprocess)."""
    seq = 0
    if rebuilt:
        state = keycache.index_state(conn)
        seq = state.seq if state else 0  # kept: sequence numbers only grow (flows/warehouse/keycache.py relies on it)
        conn.execute("delete from dedup_index")
    conn.execute(query("dedup_index_record"), {**check_params(settings), "seq": seq})


def stored_candidates(conn: duckdb.DuckDBPyConnection, sigs: dict[int, Signature], settings: DedupSettings
                      ) -> dict[int, list[int]]:
    """Stored articles worth verifying against each signature (keyed as given), ids sorted."""
    if not sigs:
        return {}
    keys = list(sigs)
    conn.register("q_hashes", pa.table({"doc": pa.array(keys, pa.int64()),
                                        "text_hash": pa.array([s.text_hash for s in sigs.values()], pa.string())}))
    # Built column-wise from the signatures' arrays: a Python dict per sample row cost more than the query.
    n_buckets = np.array([s.buckets.size for s in sigs.values()], dtype=np.int64)
    n_samples = np.array([s.samples.size for s in sigs.values()], dtype=np.int64)
    q_buckets = np.concatenate([bucket_keys(s.buckets) for s in sigs.values()] + [np.empty(0, np.int64)])
    conn.register("q_buckets", pa.table({"doc": np.repeat(np.array(keys, dtype=np.int64), n_buckets),
                                         "key": q_buckets}, schema=_BUCKETS))
    q_samples = np.concatenate([s.samples.astype(np.int64) for s in sigs.values()] + [np.empty(0, np.int64)])
    conn.register("q_samples", pa.table({
        "doc": np.repeat(np.array(keys, dtype=np.int64), n_samples),
        "hash": q_samples,
        "n_samples": np.repeat(n_samples, n_samples),
    }, schema=_SAMPLES))
    cached_seq = _register_cached(conn, sigs, n_buckets, q_buckets, n_samples, q_samples, settings)
    found: dict[int, set[int]] = {}
    with memory_capped(conn, cached_seq < 0 and not _UNCAPPED.get()):
        rows = conn.execute(query("dedup_candidates"),
                            {"sample_share": dedup.sample_share(settings), "cached_seq": cached_seq}).fetchall()
    for k, article_id in rows:
        found.setdefault(k, set()).add(article_id)
    return {k: sorted(ids) for k, ids in found.items()}


# Without a usable lookup cache (a lake, or until the maintenance flow rebuilds a lost one) the lookup reads every
# index row, and DuckDB keeps the blocks it scanned in its buffer pool up to its memory_limit (80% of RAM): gigabytes
# at a million articles, held by the loading process. Capped while that query runs, the pool evicts as it scans; the
# query itself needs little (its hash tables are built on the batch's few thousand probes), though DuckDB wants
# ~20 MB of working memory at 2 threads whatever the data, and more with more threads. 128 MB took the lookup's peak
# at 1M from 664 MiB (a 512 MB cap) to 282, in the same time (docs/benchmarks.md); a batch whose lookup needs more
# raises DuckDB's OutOfMemoryException, and the load is retried once with the cap lifted (writer.load_batch).
FALLBACK_MB = 128
FALLBACK_MB_PER_THREAD = 32  # the cap is the larger of the two: 128 MB up to 4 threads, 512 MB at 16
_UNCAPPED: contextvars.ContextVar[bool] = contextvars.ContextVar("newsflow_lookup_uncapped", default=False)


@contextmanager
def uncapped() -> Iterator[None]:
    """Inside, the lookup without a cache runs under DuckDB's own limit (a load retried after running out of
    memory under the cap)."""
    token = _UNCAPPED.set(True)
    try:
        yield
    finally:
        _UNCAPPED.reset(token)


@contextmanager
def memory_capped(conn: duckdb.DuckDBPyConnection, capped: bool) -> Iterator[None]:
    """Run the block under the lookup's cap (when `capped`): FALLBACK_MB, or FALLBACK_MB_PER_THREAD a thread."""
    if not capped:
        yield
        return
    threads = int(conn.execute("select current_setting('threads')").fetchall()[0][0])
    with memorylimit.capped(conn, f"{max(FALLBACK_MB, FALLBACK_MB_PER_THREAD * threads)}MB"):
        yield


def _register_cached(conn: duckdb.DuckDBPyConnection, sigs: dict[int, Signature], n_buckets: np.ndarray,
                     q_buckets: np.ndarray, n_samples: np.ndarray, q_samples: np.ndarray,
                     settings: DedupSettings) -> int:
    """Look the probes up in the lookup cache, when there is one built for this index, and register the
    candidates it finds as q_cached(doc, article_id) for dedup_candidates.sql; the load sequence number up to
    which it answered (-1: no cache)."""
    docs = np.array(list(sigs), dtype=np.int64)
    cache = keycache.KeyCache.open(keycache.folder_for(conn))
    seq = -1
    found_doc, found_id = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    if cache is not None and cache.usable_for(keycache.index_state(conn)):
        seq = cache.seq
        probe, ids = cache.lookup("exact", keycache.text_keys([s.text_hash for s in sigs.values()]))
        found_doc.append(docs[probe])
        found_id.append(ids)
        probe, ids = cache.lookup("lsh", q_buckets)
        found_doc.append(np.repeat(docs, n_buckets)[probe])
        found_id.append(ids)
        probe, ids = cache.lookup("samples", q_samples)
        if ids.size:
            position = np.repeat(np.arange(docs.size), n_samples)[probe]
            pair_pos, pair_id, shared = _count_pairs(position, ids)
            # The stored article's number of samples; of two (a seed replaced since), the smaller: more candidates.
            known = np.unique(pair_id)
            at, values = cache.lookup("sizes", known)
            sizes = np.full(known.size, np.iinfo(np.int64).max)
            np.minimum.at(sizes, at, values)
            sizes[sizes == np.iinfo(np.int64).max] = 0
            stored_n = sizes[np.searchsorted(known, pair_id)]
            need = np.maximum(1, np.floor(np.minimum(n_samples[pair_pos], stored_n)
                                          * dedup.sample_share(settings)))
            keep = shared >= need
            found_doc.append(docs[pair_pos[keep]])
            found_id.append(pair_id[keep])
    conn.register("q_cached", pa.table({"doc": np.concatenate(found_doc), "article_id": np.concatenate(found_id)},
                                       schema=_CACHED))
    return seq


def _count_pairs(position: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (position, id) pairs and how often each occurs."""
    order = np.lexsort((ids, position))
    position, ids = position[order], ids[order]
    first = np.ones(ids.size, dtype=bool)
    first[1:] = (position[1:] != position[:-1]) | (ids[1:] != ids[:-1])
    starts = np.flatnonzero(first)
    return position[starts], ids[starts], np.diff(np.append(starts, ids.size))


# Signatures of stored articles re-computed for verification, most recently used last. An original is a
# candidate of every copy of it, batch after batch and in both the pre-check and the load: signing its text each
# time was a quarter of the parent process's CPU in a run (docs/benchmarks.md). Keyed by the text's hash and the
# settings that shape a signature, so an entry can never stand for other text or settings; bounded, so memory
# stays flat however long `newsflow serve` runs.
_SIGNED: OrderedDict[tuple[int, str, str], Signature] = OrderedDict()
_SIGNED_MAX = 2048
_SIGNED_LOCK = threading.Lock()


# Ids per statement of a point lookup: well under DuckDB's index_scan_max_count (2048), above which a list of
# constants is no longer an index scan, and small enough that one statement's texts stay a few megabytes.
POINT_LOOKUP_IDS = 256


# A hash join hands its build side's keys to the scan of the table it probes, as an IN filter that DuckDB answers
# from the table's ART index, only while the build side has at most dynamic_or_filter_threshold distinct keys (50);
# past it the join reads the whole column. So a batch of 128 URLs looked up in `articles` (dedup_known.sql) read
# every stored URL: 0.002 s at 2k articles, 0.018 s at 1M. Under the threshold, an index scan: 0.005 s at both.
_OR_FILTER_DEFAULT = 50
_OR_FILTER_MAX = 2048  # DuckDB's index_scan_max_count: past it an IN filter is no longer an index scan anyway


@contextmanager
def keys_pushed(conn: duckdb.DuckDBPyConnection, n: int) -> Iterator[None]:
    """Run the block with joins handing up to `n` keys to the probed table's index (this connection only)."""
    conn.execute("set dynamic_or_filter_threshold = $n", {"n": min(max(n, _OR_FILTER_DEFAULT), _OR_FILTER_MAX)})
    try:
        yield
    finally:
        # A failed statement aborts the transaction, which refuses this too until its rollback: the setting then
        # stays for the connection, which costs a filter, never a wrong answer.
        with suppress(duckdb.TransactionException):
            conn.execute("reset dynamic_or_filter_threshold")


def point_lookup(conn: duckdb.DuckDBPyConnection, name: str, ids: list[int]) -> list[tuple[Any, ...]]:
    """The rows of warehouse/queries/<name>.sql for `ids`, its `$ids` expanded into a list of parameters, in
    statements of at most POINT_LOOKUP_IDS ids: an index scan of `articles` however many ids are asked for."""
    sql = query(name)
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), POINT_LOOKUP_IDS):
        chunk = ids[start:start + POINT_LOOKUP_IDS]
        # Only parameter names are formatted into the text; the values travel as parameters.
        text = sql.replace("$ids", ", ".join(f"$id_{i}" for i in range(len(chunk))))
        rows += conn.execute(text, {f"id_{i}": int(v) for i, v in enumerate(chunk)}).fetchall()
    return rows


def stored_signatures(conn: duckdb.DuckDBPyConnection, ids: Iterable[int], settings: DedupSettings
                      ) -> dict[int, Signature]:
    """Signatures of stored articles, re-computed from their text for exact verification (only the texts not
    signed already are read: a copy's original is a candidate batch after batch)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    params = index_params(settings)
    out: dict[int, Signature] = {}
    missing: list[int] = []
    for article_id, text_hash in point_lookup(conn, "candidate_hashes", wanted):
        key = (article_id, text_hash, params)
        with _SIGNED_LOCK:
            sig = _SIGNED.get(key)
            if sig is not None:
                _SIGNED.move_to_end(key)
        if sig is None:
            missing.append(article_id)
        else:
            out[article_id] = sig
    if missing:
        rows = point_lookup(conn, "candidate_texts", missing)
        signed = [(article_id, dedup.signature(text, settings)) for article_id, _hash, text in rows]
        remember(signed, settings)
        out.update(signed)
    return out


def remember(signed: Iterable[tuple[int, Signature]], settings: DedupSettings) -> None:
    """Keep signatures made with `settings` of texts that are, or may soon be, stored under these article ids,
    so that checking a copy against them later does not sign their text again."""
    params = index_params(settings)
    with _SIGNED_LOCK:
        for article_id, sig in signed:
            _SIGNED[(article_id, sig.text_hash, params)] = sig
            _SIGNED.move_to_end((article_id, sig.text_hash, params))
        while len(_SIGNED) > _SIGNED_MAX:
            _SIGNED.popitem(last=False)


def rank(match: Match) -> tuple[bool, float]:
    return (match.method == "exact", match.similarity)


def best_match(sig: Signature, others: list[tuple[Signature, int]], settings: DedupSettings
               ) -> tuple[Match, int] | None:
    """The best verified match among (signature, id) pairs; of equally good ones, the lowest id, so the answer
    does not depend on the order the candidates came in."""
    best: tuple[Match, int] | None = None
    for other, other_id in sorted(others, key=lambda p: p[1]):
        match = dedup.compare(sig, other, settings)
        if match and (best is None or rank(match) > rank(best[0])):
            best = (match, other_id)
    return best
