"""A lookup cache of the dedup index beside the warehouse file: its rows sorted by key, searched by binary search.

DuckDB answers the candidate lookup with a hash join that reads every row of `lsh_buckets` and `shingle_samples`:
a batch probes ~100,000 random keys, so zone maps cannot skip a row group, and the lookup grows with the
warehouse (docs/benchmarks.md). Sorted arrays memory-mapped from disk answer the same probes by binary search,
touching only the pages the probes land on.

The warehouse stays the one source of truth; the cache is derived from it and may be deleted at any time:

- It holds the index rows up to a load sequence number (`seq`, migration 0006) of the index record it was
  built for (method, settings and build time in `dedup_index`). The lookup (flows/candidates.py) takes the rest
  from the tables with `seq > cached`, so a cache that is behind is slower, never wrong.
- Rows deleted since (a changed seed, a copy demoted by `reprocess`) stay in the cache: they only add candidates,
  which are verified on the stored text and dropped when the article is gone.
- A cache built for another index record (after `newsflow reprocess --step dedup`) or ahead of the warehouse
  (a warehouse restored from a backup) is not used; the next refresh rebuilds it.
- `refresh` runs after a load commits, under a file lock, and replaces the manifest atomically; segment files
  are immutable, so a reader never sees a half-written one. Segments are merged as they accumulate (a size-tiered
  log: each row is rewritten O(log n) times), so a lookup searches a handful of arrays.

Layout of `<warehouse>.keys/`: `manifest.json`; per segment `<name>.keys.npy` (int64, sorted), `<name>.refs.npy`
(uint32, per row: its article in) `<name>.ids.npy` (int64 article ids, sorted, unique).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from flows.warehouse import query, transaction

log = logging.getLogger("newsflow.keycache")

FORMAT = 1
# kind -> the table its rows come from (the query reads `key` and `article_id`)
KINDS = {"lsh": "dedup_cache_lsh", "samples": "dedup_cache_samples"}
_MAX_SEGMENTS = 12  # per kind; past it everything is merged into one


def folder_for(conn: duckdb.DuckDBPyConnection) -> Path | None:
    """`<file>.keys/` beside the warehouse file `conn` is attached to; None for a lake or an in-memory database
    (their lookups query the tables)."""
    row = conn.execute(query("dedup_cache_database")).fetchone()
    if not row or not row[0]:
        return None
    path = Path(row[0])
    return path.parent / f"{path.name}.keys"


@dataclass(frozen=True)
class IndexState:
    """What the warehouse says of its index: which record built it, and its last load sequence number."""
    method: str
    params: str
    built_at: str
    seq: int

    @property
    def record(self) -> list[str]:
        return [self.method, self.params, self.built_at]


def index_state(conn: duckdb.DuckDBPyConnection) -> IndexState | None:
    row = conn.execute(query("dedup_index_state")).fetchone()
    if row is None:
        return None
    method, params, built_at, seq = row
    return IndexState(str(method), str(params), str(built_at), int(seq or 0))


class _Segment:
    def __init__(self, folder: Path, name: str) -> None:
        self.name = name
        self.keys = np.load(folder / f"{name}.keys.npy", mmap_mode="r")
        self.refs = np.load(folder / f"{name}.refs.npy", mmap_mode="r")
        self.ids = np.load(folder / f"{name}.ids.npy", mmap_mode="r")

    @property
    def rows(self) -> int:
        return int(self.keys.shape[0])

    def lookup(self, sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probe position, article id) for every stored row whose key equals a probe's."""
        lo = np.searchsorted(self.keys, sorted_keys, "left")
        inside = lo < self.rows
        hit = np.zeros(sorted_keys.size, dtype=bool)
        hit[inside] = self.keys[lo[inside]] == sorted_keys[inside]
        probes = np.flatnonzero(hit)
        if probes.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        # Only probes that hit need the end of their run of equal keys (a common shingle's, several articles).
        hi = np.searchsorted(self.keys, sorted_keys[probes], "right")
        count = hi - lo[probes]
        total = int(count.sum())
        starts = np.repeat(lo[probes], count)
        offsets = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        return np.repeat(probes, count), self.ids[self.refs[starts + offsets]]


class KeyCache:
    """An opened cache: its manifest and memory-mapped segments."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.manifest = manifest
        self.segments = {kind: [_Segment(folder, s) for s in manifest["segments"].get(kind, [])] for kind in KINDS}

    @property
    def seq(self) -> int:
        return int(self.manifest["seq"])

    @classmethod
    def open(cls, folder: Path | None) -> KeyCache | None:
        """The cache in `folder`, or None when there is none or it cannot be read (the lookup then uses SQL)."""
        if folder is None or not (folder / "manifest.json").exists():
            return None
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            if manifest.get("format") != FORMAT:
                return None
            return cls(folder, manifest)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("dedup lookup cache %s unreadable, not used (%s: %s)", folder, type(exc).__name__, exc)
            return None

    def usable_for(self, state: IndexState | None) -> bool:
        """Built for the warehouse's current index record, and not ahead of it."""
        return state is not None and self.manifest["index"] == state.record and self.seq <= state.seq

    def lookup(self, kind: str, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index into `keys`, article id) for every cached row matching a key."""
        order = np.argsort(keys, kind="stable")
        sorted_keys = np.ascontiguousarray(keys[order])
        found_probe, found_id = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
        for segment in self.segments[kind]:
            p, a = segment.lookup(sorted_keys)
            found_probe.append(order[p])
            found_id.append(a)
        return np.concatenate(found_probe), np.concatenate(found_id)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*.npy"))


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_segment(folder: Path, name: str, keys: np.ndarray, article_ids: np.ndarray) -> int:
    order = np.argsort(keys, kind="stable")
    ids, refs = np.unique(article_ids, return_inverse=True)
    if ids.size >= 2**32:
        raise ValueError("a cache segment holds at most 2**32 articles")
    for suffix, arr in (("keys", keys[order]), ("refs", refs[order].astype(np.uint32)), ("ids", ids)):
        np.save(folder / f"{name}.{suffix}.npy", np.ascontiguousarray(arr))
    return int(keys.size)


def _rows(conn: duckdb.DuckDBPyConnection, kind: str, after: int, upto: int) -> tuple[np.ndarray, np.ndarray]:
    got = conn.execute(query(KINDS[kind]), {"after": after, "upto": upto}).fetchnumpy()
    return np.asarray(got["key"], dtype=np.int64), np.asarray(got["article_id"], dtype=np.int64)


def _merge(folder: Path, kind: str, names: list[str], counter: int) -> str:
    segments = [_Segment(folder, n) for n in names]
    keys = np.concatenate([np.asarray(s.keys) for s in segments])
    ids = np.concatenate([np.asarray(s.ids)[np.asarray(s.refs)] for s in segments])
    name = f"{kind}-{counter:08d}"
    _write_segment(folder, name, keys, ids)
    return name


def refresh(conn: duckdb.DuckDBPyConnection, folder: Path | None = None) -> KeyCache | None:
    """Bring the cache up to the committed index: a new segment of the rows loaded since, or a rebuild when the
    cache was built for another index record. Call with no open transaction that has written."""
    folder = folder if folder is not None else folder_for(conn)
    if folder is None:
        return None
    with _locked(folder):
        with transaction(conn):  # one snapshot for the state and the rows read
            state = index_state(conn)
            if state is None:
                return None
            cache = KeyCache.open(folder)
            manifest = cache.manifest if cache is not None and cache.usable_for(state) else None
            if manifest is not None and manifest["seq"] == state.seq:
                return cache
            if manifest is None:
                manifest = {"format": FORMAT, "index": state.record, "seq": -1, "counter": 0,
                            "segments": {kind: [] for kind in KINDS}}
            for kind in KINDS:
                keys, ids = _rows(conn, kind, manifest["seq"], state.seq)
                if keys.size == 0:
                    continue
                manifest["counter"] += 1
                names = manifest["segments"][kind]
                names.append(f"{kind}-{manifest['counter']:08d}")
                _write_segment(folder, names[-1], keys, ids)
                manifest["segments"][kind] = _compact(folder, kind, names, manifest)
            manifest["seq"] = state.seq
        tmp = folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, folder / "manifest.json")
        _remove_unlisted(folder, manifest)
    return KeyCache.open(folder)


def _compact(folder: Path, kind: str, names: list[str], manifest: dict[str, Any]) -> list[str]:
    """Merge the newest segments while the one before is at most twice their size (or when there are too many)."""
    def rows(name: str) -> int:
        return int(np.load(folder / f"{name}.keys.npy", mmap_mode="r").shape[0])

    names = list(names)
    while len(names) >= 2 and (rows(names[-2]) <= 2 * rows(names[-1]) or len(names) > _MAX_SEGMENTS):
        manifest["counter"] += 1
        merged = _merge(folder, kind, names[-2:], manifest["counter"])
        names[-2:] = [merged]
    return names


def _remove_unlisted(folder: Path, manifest: dict[str, Any]) -> None:
    """Segment files no manifest lists any more. A reader that mapped one keeps it until it closes (POSIX)."""
    listed = {n for names in manifest["segments"].values() for n in names}
    for path in folder.glob("*.npy"):
        if path.name.split(".")[0] not in listed:
            path.unlink(missing_ok=True)


def safe_refresh(conn: duckdb.DuckDBPyConnection) -> None:
    """refresh(), whose failure (a full disk, a permission) costs only lookup speed: logged, never raised. The
    manifest is replaced only once every file it lists is written, so the cache left is consistent, just behind."""
    try:
        refresh(conn)
    except Exception as exc:  # a cache must never fail the load that just committed
        log.warning("dedup lookup cache not refreshed (%s: %s); lookups read the newer rows from the warehouse "
                    "tables until the next refresh", type(exc).__name__, exc)
