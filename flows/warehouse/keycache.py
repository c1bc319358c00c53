"""A lookup cache of the dedup index beside the warehouse file: its rows sorted by key, searched by binary search.

DuckDB answers the candidate lookup with a hash join that reads every row of `lsh_buckets` and `shingle_samples`:
a batch probes ~100,000 random keys, so zone maps cannot skip a row group, and the lookup grows with the
warehouse (docs/benchmarks.md). Sorted arrays on disk answer the same probes: a fence every 512 keys, held in
memory, says which 4 KB block of the keys holds a probe's place, one read of that block finds it, and only the
probes that hit touch the memory-mapped article ids.

The warehouse stays the one source of truth; the cache is derived from it and may be deleted at any time:

- It holds the index rows up to a load sequence number (`seq`, migration 0006) of the index record it was
  built for (method, settings and build time in `dedup_index`). The lookup (flows/warehouse/candidates.py) takes
  the rest from the tables with `seq > cached`, so a cache that is behind is slower, never wrong.
- Rows deleted since (a changed seed, a copy demoted by `reprocess`) stay in the cache: they only add candidates,
  which are verified on the stored text and dropped when the article is gone.
- A cache built for another index record (after `newsflow reprocess --step dedup`) or ahead of the warehouse
  (a warehouse restored from a backup) is not used, nor a missing one: lookups read the tables until the
  maintenance flow rebuilds it (`newsflow maintain`), never a load, where the rebuild would hold the writer.
- `refresh` runs after a load commits, under a file lock, and replaces the manifest atomically; segment files
  are immutable, so a reader never sees a half-written one. Segments are merged as they accumulate (a size-tiered
  log: each row is rewritten O(log n) times), so a lookup searches a handful of arrays.

Layout of `<warehouse>.keys/`: `manifest.json`; per segment `<name>.keys.npy` (int64, sorted), `<name>.refs.npy`
(uint32, per row: its article in) `<name>.ids.npy` (int64 article ids), `<name>.fences.npy` (every 512th key).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import mmap
import os
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from flows.warehouse import memorylimit
from flows.warehouse.database import query, transaction

log = logging.getLogger("newsflow.keycache")

FORMAT = 1
# kind -> the query of its rows (`key`, `article_id`): LSH bucket keys and sampled shingles -> articles; the text
# hash (its first 64 bits, text_key) -> articles; and, under `sizes`, article id -> its number of samples, which
# the containment threshold needs (the `article_id` column then holds that number).
KINDS = {"lsh": "dedup_cache_lsh", "samples": "dedup_cache_samples", "exact": "dedup_cache_exact",
         "sizes": "dedup_cache_sizes"}
_MAX_SEGMENTS = 12  # per kind; past it the newest are merged whatever their sizes
# Segments are not merged past this many rows (a merge holds ~9 bytes per row in memory), and a rebuild reads
# the tables in chunks of _CHUNK rows, so memory stays bounded at any warehouse size.
_MAX_ROWS = 1 << 28
_CHUNK = 1 << 24
REBUILD_MEMORY = "256MB"  # DuckDB's memory_limit while a rebuild reads the index tables
_FENCE = 512  # one key in _FENCE is kept in memory-sized `fences`: a probe searches one block of the big array
_PROBES = 1000  # probes looked up between two releases of the pages they mapped (_Segment.release)


def text_keys(text_hashes: list[str]) -> np.ndarray:
    """The first 64 bits of hex text hashes, as the `exact` kind's keys (a collision only adds a candidate)."""
    return np.frombuffer(bytes.fromhex("".join(h[:16] for h in text_hashes)), dtype=">u8").astype(np.uint64
                                                                                                  ).view(np.int64)


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


def status(conn: duckdb.DuckDBPyConnection, folder: Path | None = None) -> str:
    """`current`, `behind` (usable, lookups read the newer rows from the tables), `missing` or `stale` (not usable:
    lookups read every row from the tables until it is rebuilt), or `none` (no index yet, or a lake)."""
    folder = folder if folder is not None else folder_for(conn)
    state = index_state(conn)
    if folder is None or state is None:
        return "none"
    cache = KeyCache.open(folder)
    if cache is None:
        return "missing"
    if not cache.usable_for(state):
        return "stale"
    return "current" if cache.seq == state.seq else "behind"


def index_state(conn: duckdb.DuckDBPyConnection) -> IndexState | None:
    row = conn.execute(query("dedup_index_state")).fetchone()
    if row is None:
        return None
    method, params, built_at, seq = row
    return IndexState(str(method), str(params), str(built_at), int(seq or 0))


def _mapped(path: Path) -> tuple[mmap.mmap | None, np.ndarray, int]:
    """A .npy file's array over a read-only mapping of the file, the mapping (None for an empty array), so its
    pages can be released (np.load's memmap does not expose its mapping), and where the data starts in the file."""
    with path.open("rb") as fh:
        major, _ = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        count, offset = int(np.prod(shape)), fh.tell()
        if fortran or len(shape) != 1:
            raise ValueError(f"{path}: not a flat array")
        if count == 0:
            return None, np.empty(0, dtype), offset
        mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    return mapping, np.frombuffer(mapping, dtype=dtype, count=count, offset=offset), offset


class _Segment:
    def __init__(self, folder: Path, name: str) -> None:
        self.name = name
        # The keys are read through a descriptor opened with the mappings and kept, as the mappings keep their
        # pages: a refresh in another process may merge this segment and delete its files while a run still looks
        # up in the cache it opened. Opened first, so both are the file the manifest named.
        self._keys_fd = os.open(folder / f"{name}.keys.npy", os.O_RDONLY)
        weakref.finalize(self, os.close, self._keys_fd)
        mapped = [_mapped(folder / f"{name}.{part}.npy") for part in ("keys", "refs", "ids")]
        self._maps = [m for m, _, _ in mapped if m is not None]
        self.keys, self.refs, self.ids = (a for _, a, _ in mapped)
        self._keys_at = mapped[0][2]
        self.fences = np.load(folder / f"{name}.fences.npy")

    def release(self) -> None:
        """Unmap the pages lookups touched (they stay in the page cache: the next touch is a minor fault). Each
        page touched maps its neighbours too (fault-around): when probes searched the mapped keys, a batch's
        ~10,000 probes mapped ~0.8 GB of a million articles' cache into the loading process, where lookups of
        _PROBES at a time, released between, kept it under ~0.1 GB (docs/pipeline.md). The keys are read now
        (_blocks); the hits' rows of `refs` and `ids` are still mapped."""
        for mapping in self._maps:
            mapping.madvise(mmap.MADV_DONTNEED)

    @property
    def rows(self) -> int:
        return int(self.keys.shape[0])

    def _blocks(self, sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The keys of the blocks of _FENCE rows the probes fall in, read with one `pread` each and laid end to
        end (still sorted, as the array is: the blocks come in order), each probe's block's row in them, and the
        shift from a position in them to one in the array. A probe's block is the last whose fence is below its
        key: a run of equal keys may start before a fence equal to it, and the key's place is then in the block
        or at its end. Reading rather than touching the mapping: each first touch of a mapped page is a fault
        (with its neighbours mapped too), ~5 us on this machine against ~2.5 us a read, so a batch's ~10,000
        probes at a million articles took 45-75 ms (docs/benchmarks.md, "dedup decision")."""
        block = np.maximum(np.searchsorted(self.fences, sorted_keys, "left") - 1, 0)
        blocks, row = np.unique(block, return_inverse=True)
        size = _FENCE * self.keys.itemsize
        # The last block may be short: its tail is filled with the largest key, which keeps the blocks sorted
        # and only ever lands past the array's end (positions are capped at `rows`).
        flat = np.full(blocks.size * _FENCE, np.iinfo(self.keys.dtype).max, dtype=self.keys.dtype)
        view = memoryview(flat).cast("B")
        for i, b in enumerate(blocks.tolist()):
            os.preadv(self._keys_fd, [view[i * size:(i + 1) * size]], self._keys_at + b * size)
        return flat, row, (blocks[row] - row) * _FENCE

    def _lookup(self, sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.rows == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        flat, row, shift = self._blocks(sorted_keys)
        pos = np.searchsorted(flat, sorted_keys, "left")
        lo = np.minimum(pos + shift, self.rows)
        # The key at `lo`: from the block read, or, for a key above every key of its block (its place the next
        # block's first row, ~1 probe in _FENCE), from the mapping.
        at = np.zeros_like(sorted_keys)
        in_block = pos < (row + 1) * _FENCE
        at[in_block] = flat[pos[in_block]]
        edge = ~in_block & (lo < self.rows)
        at[edge] = self.keys[lo[edge]]
        probes = np.flatnonzero((lo < self.rows) & (at == sorted_keys))
        if probes.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        # Only probes that hit need the end of their run of equal keys (a common shingle's, several articles):
        # in the block read, unless the run reaches its end, and then over the whole mapped array.
        ends = np.searchsorted(flat, sorted_keys[probes], "right")
        hi = np.minimum(ends + shift[probes], self.rows)
        long = (ends >= (row[probes] + 1) * _FENCE) & (hi < self.rows)
        if long.any():
            hi[long] = np.searchsorted(self.keys, sorted_keys[probes][long], "right")
        count = hi - lo[probes]
        total = int(count.sum())
        starts = np.repeat(lo[probes], count)
        offsets = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        return np.repeat(probes, count), self.ids[self.refs[starts + offsets]]

    def lookup(self, sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probe position, article id) for every stored row whose key equals a probe's: _PROBES probes at a
        time, the pages they mapped released after each (release)."""
        if sorted_keys.size <= _PROBES:
            try:
                return self._lookup(sorted_keys)
            finally:
                self.release()
        probes, ids = [], []
        for start in range(0, sorted_keys.size, _PROBES):
            p, a = self.lookup(sorted_keys[start:start + _PROBES])
            probes.append(p + start)
            ids.append(a)
        return np.concatenate(probes), np.concatenate(ids)


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
            # Fences are read at the spacing they were written with: a cache of another spacing is rebuilt.
            if manifest.get("format") != FORMAT or manifest.get("fence") != _FENCE:
                return None
            return cls(folder, manifest)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("dedup lookup cache %s unreadable, not used (%s: %s): the tables are read instead until "
                        "`newsflow maintain --step cache` (nightly under `serve`) rebuilds it", folder,
                        type(exc).__name__, exc)
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


def _save(folder: Path, name: str, keys: np.ndarray, refs: np.ndarray, ids: np.ndarray) -> None:
    np.save(folder / f"{name}.ids.npy", np.ascontiguousarray(ids, dtype=np.int64))
    np.save(folder / f"{name}.fences.npy", np.ascontiguousarray(keys[::_FENCE]))
    np.save(folder / f"{name}.refs.npy", np.ascontiguousarray(refs, dtype=np.uint32))
    np.save(folder / f"{name}.keys.npy", np.ascontiguousarray(keys))


def _write_segment(folder: Path, name: str, keys: np.ndarray, article_ids: np.ndarray) -> int:
    order = np.argsort(keys, kind="stable")
    ids, refs = np.unique(article_ids, return_inverse=True)
    if ids.size >= 2**32:
        raise ValueError("a cache segment holds at most 2**32 articles")
    _save(folder, name, keys[order], refs[order], ids)
    return int(keys.size)


def _merge(folder: Path, kind: str, names: list[str], counter: int) -> str:
    """One segment of two, in one pass: the newer one's keys are placed among the older one's by binary search,
    and written through memory-mapped output files; the article lists are concatenated, not re-sorted."""
    a, b = (_Segment(folder, n) for n in names)
    n = a.rows + b.rows
    if a.ids.size + b.ids.size >= 2**32:
        raise ValueError("a cache segment holds at most 2**32 articles")
    at = np.searchsorted(a.keys, b.keys, "right") + np.arange(b.rows)
    from_a = np.ones(n, dtype=bool)
    from_a[at] = False
    name = f"{kind}-{counter:08d}"
    keys = np.lib.format.open_memmap(folder / f"{name}.keys.npy", mode="w+", dtype=np.int64, shape=(n,))
    keys[at] = b.keys
    keys[from_a] = a.keys
    refs = np.lib.format.open_memmap(folder / f"{name}.refs.npy", mode="w+", dtype=np.uint32, shape=(n,))
    refs[at] = np.asarray(b.refs) + np.uint32(a.ids.size)
    refs[from_a] = a.refs
    np.save(folder / f"{name}.ids.npy", np.concatenate([a.ids, b.ids]))
    np.save(folder / f"{name}.fences.npy", np.ascontiguousarray(keys[::_FENCE]))
    keys.flush()
    refs.flush()
    del keys, refs
    return name


def _append_rows(conn: duckdb.DuckDBPyConnection, folder: Path, kind: str, after: int, upto: int,
                 manifest: dict[str, Any], published: set[str]) -> None:
    """New segments of the rows loaded after `after` up to `upto`, read in chunks of at most _CHUNK rows."""
    reader = conn.execute(query(KINDS[kind]), {"after": after, "upto": upto}).fetch_record_batch(min(_CHUNK, 1 << 20))
    pending: list[Any] = []
    rows = 0

    def flush() -> None:
        nonlocal pending, rows
        if not rows:
            return
        keys = np.concatenate([text_keys(b.column("key").to_pylist()) if kind == "exact"
                               else np.asarray(b.column("key"), dtype=np.int64) for b in pending])
        ids = np.concatenate([np.asarray(b.column("article_id"), dtype=np.int64) for b in pending])
        pending, rows = [], 0
        manifest["counter"] += 1
        names = manifest["segments"][kind]
        names.append(f"{kind}-{manifest['counter']:08d}")
        _write_segment(folder, names[-1], keys, ids)
        manifest["segments"][kind] = _compact(folder, kind, names, manifest, published)

    for batch in reader:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= _CHUNK:
            flush()
    flush()


def refresh(conn: duckdb.DuckDBPyConnection, folder: Path | None = None, *, min_behind: int = 0,
            rebuild: bool = True) -> KeyCache | None:
    """Bring the cache up to the committed index: a new segment of the rows loaded since, or a rebuild when there
    is no usable cache (none, unreadable, built for another index record, ahead of a restored warehouse). Call
    with no open transaction that has written.

    `min_behind`: leave a usable cache as it is while fewer articles than this were indexed since it was written
    (lookups read those from the tables; a cache behind is slower, never wrong).
    `rebuild=False` (a load, on the hot path): never rebuild; without a usable cache, return None and leave it to
    the maintenance flow (flows/ops/upkeep.py), the lookups reading the tables meanwhile. A rebuild reads the whole
    index (46 s and 4.7 GB at 1M articles) and would hold the writer. Only the first load of a new index builds
    one: it reads nothing but its own rows.
    """
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
            if manifest is not None and min_behind > 0:
                behind = conn.execute(query("dedup_cache_behind"), {"after": manifest["seq"]}).fetchone()[0]
                if behind < min_behind:
                    return cache
            if manifest is None and not rebuild and state.seq > 1:
                if cache is not None:
                    # Never usable again: a cache ahead of a restored warehouse would look current once new loads
                    # caught up with its numbers, and miss their rows. Missing, it waits for the maintenance flow.
                    (folder / "manifest.json").unlink(missing_ok=True)
                return None
            if manifest is None:
                # Numbered past every file on disk: a reader may still map the segments of the cache replaced.
                counter = max((int(p.name.split(".")[0].rsplit("-", 1)[1]) for p in folder.glob("*-*.keys.npy")),
                              default=0)
                manifest = {"format": FORMAT, "fence": _FENCE, "index": state.record, "seq": -1, "counter": counter,
                            "segments": {kind: [] for kind in KINDS}}
            published = {n for names in manifest["segments"].values() for n in names}
            # A rebuild scans every index row: capped, DuckDB's buffer pool evicts as it goes (2.56 -> 1.73 GB
            # at 1M, the rest the chunks' arrays; docs/pipeline.md). A refresh reads a few thousand rows.
            with memorylimit.capped(conn, REBUILD_MEMORY) if manifest["seq"] < 0 else contextlib.nullcontext():
                for kind in KINDS:
                    _append_rows(conn, folder, kind, manifest["seq"], state.seq, manifest, published)
            manifest["seq"] = state.seq
        tmp = folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, folder / "manifest.json")
        _remove_unlisted(folder, manifest)
    return KeyCache.open(folder)


def _compact(folder: Path, kind: str, names: list[str], manifest: dict[str, Any], published: set[str]
             ) -> list[str]:
    """Merge the newest segments while the one before is at most twice their size (or when there are too many),
    never past _MAX_ROWS rows."""
    def rows(name: str) -> int:
        return int(np.load(folder / f"{name}.keys.npy", mmap_mode="r").shape[0])

    names = list(names)
    while len(names) >= 2:
        older, newer = rows(names[-2]), rows(names[-1])
        if older + newer > _MAX_ROWS or (older > 2 * newer and len(names) <= _MAX_SEGMENTS):
            break
        manifest["counter"] += 1
        merged = _merge(folder, kind, names[-2:], manifest["counter"])
        # Inputs made by this refresh are listed by no published manifest: gone now, so a rebuild of a large
        # index needs about twice its size on disk, not the sum of every intermediate merge.
        for name in names[-2:]:
            if name not in published:
                for path in folder.glob(f"{name}.*.npy"):
                    path.unlink()
        names[-2:] = [merged]
    return names


def _remove_unlisted(folder: Path, manifest: dict[str, Any]) -> None:
    """Segment files no manifest lists any more. A reader that mapped one keeps it until it closes (POSIX)."""
    listed = {n for names in manifest["segments"].values() for n in names}
    for path in folder.glob("*.npy"):
        if path.name.split(".")[0] not in listed:
            path.unlink(missing_ok=True)


def safe_refresh(conn: duckdb.DuckDBPyConnection, *, min_behind: int = 0, rebuild: bool = False) -> None:
    """refresh() after a load (`min_behind`: only once the cache is that many articles behind; never a rebuild
    unless asked), whose failure (a full disk, a permission) costs only lookup speed: logged, never raised. The
    manifest is replaced only once every file it lists is written, so the cache left is consistent, just behind."""
    try:
        refresh(conn, min_behind=min_behind, rebuild=rebuild)
    except Exception as exc:  # a cache must never fail the load that just committed
        log.warning("dedup lookup cache not refreshed (%s: %s); lookups read the newer rows from the warehouse "
                    "tables until the next refresh", type(exc).__name__, exc)
