"""The full-text search index: an inverted index of the stored originals in immutable segment files beside the
warehouse, refreshed incrementally. No Prefect here: the run calls `refresh(settings)` after its last load,
`newsflow search --rebuild` and `reprocess` call `refresh(settings, rebuild=True)`.

Why beside the warehouse: a DuckLake cannot hold an index, and a reader of the DuckDB warehouse file would hold up
the next load; the index is derived data that readers open read-only while loads go on. Layout, for
`<stem>.duckdb` (WarehouseSettings.search_path and search_segments_dir):

- `<stem>.search.duckdb`, the head: which segments make the index, the articles of those readers must skip
  (tombstones), BM25 statistics, copy counts and feed tags (flows/warehouse/search_segments.py). Small; rewritten
  by each refresh into a temporary file renamed over it (os.replace): the switch to a new state is atomic.
- `<stem>.search-segments/<name>.duckdb`, the segments: immutable; a refresh adds one of the articles loaded (or
  whose text changed) since the last, and merges segments of the same size tier (TIER of them, up to MERGE_MAX
  articles) by copying their postings, so an article is re-written O(log n) times and a refresh costs in proportion
  to the run's articles, not the archive's. A merge also drops the tombstoned articles of what it merges.

What is new is read from the rows loads wrote since the head's mark (the load sequence number and article count
the index is current with, _Mark): each load takes the next number in its transaction, so a load that committed
during a refresh is read by the next one, and a changed seed (deleted and stored again in one load) too. When the
mark does not fit the warehouse (rows deleted or added outside a load, another warehouse restored), or when asked
(`full=True`: the maintenance flow, daily), the live articles' (article_id, text hash) are compared with every
stored original instead; `reprocess`, which demotes copies and rewrites texts, rebuilds. A crash leaves the
previous head and its segments untouched (files are removed only after the new head is in place; orphans of a
crash go at the next refresh). A reader keeps the files it opened.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import math
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from flows.core.errors import WarehouseError
from flows.core.settings import Settings, WarehouseSettings
from flows.warehouse import database
from flows.warehouse import search_segments as segs
from flows.warehouse.search_segments import FORMAT, INDEXES, connect, load_fts  # noqa: F401

log = logging.getLogger("newsflow.search")

# Segments of one size tier (SMALL x TIER^k articles) are merged when there are TIER of them; a refresh never
# merges into a segment of more than MERGE_MAX articles (past it segments stay: one per MERGE_MAX articles, a
# rebuild joins them). A rebuild builds segments of at most SEGMENT_MAX articles (memory stays bounded).
TIER = 4
SMALL = 1_000
MERGE_MAX = 250_000
SEGMENT_MAX = 250_000
_MAX_RANGES = 200  # runs of new article ids read by range; more (a rebuild, a scattered change): read everything
_WAIT = 10.0  # seconds a refresh waits for the warehouse before leaving the index for the next run


@dataclass(frozen=True)
class Refresh:
    """What one refresh did. `mode`: base (built from nothing), delta (added a segment) or skipped."""
    mode: str
    articles: int  # originals searchable after it
    indexed: int  # articles written into a new segment by it (merges not counted)
    seconds: float
    reason: str = ""  # why it rebuilt, or why it skipped
    merged: int = 0  # articles re-written by merges
    segments: int = 0  # segments of the index after it
    compared: str = ""  # "new": only what loads wrote since the last refresh; "all": every stored original


def segments_dir(settings: WarehouseSettings) -> Path:
    return settings.search_segments_dir


def index_name(language: str | None) -> str:
    """The index an article in `language` goes to."""
    key = (language or "").split("-")[0].lower()
    return key if key in INDEXES else "other"


@contextlib.contextmanager
def _refresh_lock(settings: WarehouseSettings) -> Iterator[bool]:
    """A non-blocking lock beside the index: True when this process may refresh it (one refresher at a time)."""
    path = settings.search_path.with_name(settings.search_path.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# A run builds a missing index only for a warehouse this small (about a minute here); above, maintenance does.
RUN_BUILD_LIMIT = 20_000


def behind_mark(settings: WarehouseSettings) -> Path:
    """A file that says a run's refresh did not finish (killed, a full disk, skipped while busy): made before a
    run refreshes, removed once it has. Runs refresh only after they load something, so without it the index stayed
    behind after such a refresh, with no error, until a later run loaded (or `maintain` ran); with it, the next run
    refreshes, quiet or not, for the price of a stat."""
    return settings.search_path.with_name(settings.search_path.name + ".behind")


def refresh(settings: Settings, *, rebuild: bool = False, full: bool = False, wait: float | None = None,
            build_limit: int | None = None) -> Refresh:
    """Bring the search index up to date with the warehouse: add a segment of what is new, tombstone what is gone,
    merge segments by size tier; or build it from nothing when asked or when there is none (or of another format).

    What is new is what loads wrote since the index's mark (_Mark); with `full`, or when the mark does not fit the
    warehouse, every stored original is compared with the index instead (the maintenance flow does so daily).

    `build_limit` (a run's refresh): with no index yet, build it only for at most that many articles; above, skip
    and say so, for a first build of a large warehouse (23 minutes at a million articles) is the maintenance
    flow's or `newsflow search --rebuild`'s work, never a run's.

    Never raises for a warehouse that cannot be read now (busy, missing, or held by this very process with
    another configuration), nor for another refresh under way: it skips and says why in `reason` (the next refresh
    catches up: its mark is the last one written). Other errors (a full disk) propagate.
    """
    wh = settings.warehouse
    start = time.perf_counter()

    def done(mode: str, reason: str = "", **counts: int) -> Refresh:
        return Refresh(mode, seconds=round(time.perf_counter() - start, 3), reason=reason,
                       **{"articles": 0, "indexed": 0, **counts})

    if not database.exists(wh):
        return done("skipped", reason="no warehouse yet")
    with _refresh_lock(wh) as free:
        if not free:
            return done("skipped", reason="another refresh of the index is under way")
        head = None if rebuild else segs.read_head(wh.search_path)
        upgraded = None if rebuild or head is not None else segs.read_head(wh.search_path, (segs.UPGRADABLE,))
        if upgraded is not None:  # the previous format lacks only the postings files: written from its segments
            for name, _ in upgraded[1]:
                segs.upgrade(segments_dir(wh), name)
            head = upgraded
        if head is not None and (lost := _missing_files(segments_dir(wh), [n for n, _ in head[1]])):
            # The segments' files gone (their folder deleted by hand): every refresh failed on them, naming a
            # file, until someone rebuilt; built again here, as for no index (within build_limit).
            log.warning("search index: %s missing; building it again", lost)
            head = None
        reason = "asked" if rebuild else "no index yet" if head is None else ""
        if head is None and not rebuild and build_limit is not None:
            stored = _article_count(wh, wait=_WAIT if wait is None else wait)
            if stored is None or stored > build_limit:
                return done("skipped", reason=f"no index yet and {stored if stored is not None else 'unknown'} "
                            "articles: `newsflow maintain --step cache` or `newsflow search --rebuild` builds it")
        folder = segments_dir(wh)
        folder.mkdir(parents=True, exist_ok=True)
        segments = [] if head is None else head[1]
        tombstones = _no_tombstones() if head is None else head[2]
        since = None if head is None or full else _Mark.of(head[0])
        work = folder / f"build-{uuid.uuid4().hex[:8]}"
        work.mkdir()
        try:
            try:
                extract = _extract(wh, folder, segments, tombstones, work, since=since,
                                   wait=_WAIT if wait is None else wait)
            except WarehouseError as exc:  # busy, missing, or open in this process with another configuration
                return done("skipped", reason=database.first_line(exc))
            tombstones = pa.concat_tables([tombstones, extract.gone.cast(tombstones.schema)])
            new = _build(folder, work, extract.rows, settings.entities.default_language) if extract.rows else []
            segments, tombstones, merged = _merge_tiers(folder, segments + new, tombstones)
            if not segments:  # an index of no article is one empty segment (the readers' SQL needs one)
                segments = _build(folder, work, 0, settings.entities.default_language)
            stats = segs.live_stats(folder, [n for n, _ in segments], tombstones)
            copies = _add_copies(segs.read_copies(wh.search_path), extract.copies) if extract.compared_new \
                else extract.copies
            segs.write_head(wh.search_path, gen=uuid.uuid4().hex, segments=segments, tombstones=tombstones,
                            stats=stats, copies=copies, feeds=extract.feeds, mark=extract.mark.row())
            _sweep(folder, {n for n, _ in segments}, work)
            behind_mark(wh).unlink(missing_ok=True)  # whoever refreshed (a run, `load`, `maintain`, --rebuild)
            return done("base" if reason else "delta", reason, articles=int(pc.sum(stats["n"]).as_py() or 0),
                        indexed=extract.rows, merged=merged, segments=len(segments),
                        compared="new" if extract.compared_new else "all")
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _missing_files(folder: Path, names: list[str]) -> str:
    """The first file of the segments `names` that is not in `folder`, else ""."""
    from flows.warehouse.search_postings import post_file

    for name in names:
        for path in (segs.text_file(folder, name), post_file(folder, name)):
            if not path.exists():
                return str(path)
    return ""


def _article_count(wh: WarehouseSettings, *, wait: float) -> int | None:
    """How many articles the warehouse holds; None when it cannot be read now."""
    try:
        with database.connect(wh, read_only=True, wait=wait) as conn:
            return int(conn.execute(database.query("article_count")).fetchone()[0])
    except (WarehouseError, duckdb.Error):
        return None


def _no_tombstones() -> pa.Table:
    return pa.table({"seg": pa.array([], pa.string()), "article_id": pa.array([], pa.int64())})


def _build(folder: Path, work: Path, rows: int, default: str) -> list[tuple[str, int]]:
    """Segments of the originals in work/originals.parquet (in article order), SEGMENT_MAX articles at most each."""
    source = "read_parquet(" + segs.lit(str(work / "originals.parquet")) + ")"
    with contextlib.closing(segs.plain()) as conn:
        bounds = [r[0] for r in conn.execute(
            f"select article_id from (select article_id, row_number() over (order by article_id) - 1 as n "
            f"from {source}) where n % {SEGMENT_MAX} = 0 order by article_id").fetchall()]
    bounds = (bounds or [0]) + [None]
    return [segs.build(folder, f"(select * from {source} where article_id >= {int(lo)}"
                               + (f" and article_id < {int(hi)})" if hi is not None else ")"), default)
            for lo, hi in itertools.pairwise(bounds)]


def _tier(articles: int) -> int:
    return 0 if articles < SMALL * TIER else int(math.log(articles / SMALL, TIER))


def _merge_tiers(folder: Path, segments: list[tuple[str, int]], tombstones: pa.Table
                 ) -> tuple[list[tuple[str, int]], pa.Table, int]:
    """Merge the segments of any size tier that has TIER of them (by live articles: a segment's articles less its
    tombstones), as long as the result stays under MERGE_MAX; segments with no live article are dropped with
    their tombstones. Returns segments, tombstones, articles re-written."""
    merged = 0
    while True:
        dead = dict(zip(*pc.value_counts(tombstones["seg"]).flatten(), strict=True)) if tombstones.num_rows else {}
        counts = {n: a - int(dead.get(n, 0)) for n, a in segments}
        segments = [(n, a) for n, a in segments if counts[n] > 0]
        tombstones = tombstones.filter(pc.is_in(tombstones["seg"], pa.array([n for n, _ in segments], pa.string())))
        tiers: dict[int, list[str]] = {}
        for name, _ in segments:
            tiers.setdefault(_tier(counts[name]), []).append(name)
        group = next((names for _, names in sorted(tiers.items()) if len(names) >= TIER
                      and sum(counts[n] for n in names) <= MERGE_MAX), None)
        if group is None:
            return segments, tombstones, merged
        name, n = segs.merge(folder, group, tombstones)
        merged += n
        tombstones = tombstones.filter(pc.invert(pc.is_in(tombstones["seg"], pa.array(group, pa.string()))))
        at = min(i for i, (s, _) in enumerate(segments) if s in group)
        rest = [(s, a) for s, a in segments if s not in group]
        segments = [*rest[:at], (name, n), *rest[at:]]


def _sweep(folder: Path, keep: set[str], work: Path) -> None:
    """Remove what the head does not name: merged-away segments, a crashed refresh's files (the lock says no other
    refresh is writing here)."""
    for path in folder.iterdir():
        if path.is_dir():
            if path != work:
                shutil.rmtree(path, ignore_errors=True)
        elif not (path.suffix in (".duckdb", ".text", ".post") and path.stem in keep):
            path.unlink(missing_ok=True)


def _ranges(ids: list[int]) -> str:
    """SQL: `article_id` in one of the runs of consecutive `ids` (sorted): a filter DuckDB prunes row groups by,
    where an IN list is checked only after reading every row. Past _MAX_RANGES runs, every row (rebuilds)."""
    if not ids:
        return "false"
    runs, start = [], ids[0]
    for prev, cur in itertools.pairwise(ids):
        if cur != prev + 1:
            runs.append((start, prev))
            start = cur
    runs.append((start, ids[-1]))
    if len(runs) > _MAX_RANGES:
        return "true"
    return "(" + " or ".join(f"article_id between {int(lo)} and {int(hi)}" for lo, hi in runs) + ")"


@dataclass(frozen=True)
class _Mark:
    """Where the warehouse stood when the index was last brought up to date: its load sequence number (every load
    that writes articles or copies takes the next, warehouse/migrations/0010) and its number of articles. The next
    refresh reads only the rows of later loads, and compares everything when the count does not add up (articles
    deleted or added outside a load, another warehouse restored) or the sequence went back."""
    load_seq: int | None
    stored: int | None

    @classmethod
    def of(cls, meta: dict[str, object]) -> _Mark | None:
        seq, stored = meta.get("load_seq"), meta.get("stored")
        return cls(int(seq), int(stored)) if isinstance(seq, int) and isinstance(stored, int) else None

    def row(self) -> dict[str, int | None]:
        return {"load_seq": self.load_seq, "stored": self.stored}


@dataclass
class _Extract:
    rows: int  # originals copied into work/originals.parquet
    copies: pa.Table  # every original's copies; with compared_new, only the copies recorded since the mark
    feeds: pa.Table
    gone: pa.Table  # (seg, article_id): live articles to tombstone
    mark: _Mark
    compared_new: bool  # only what loads wrote since the mark was compared


def _extract(wh: WarehouseSettings, folder: Path, segments: list[tuple[str, int]], tombstones: pa.Table,
             work: Path, *, since: _Mark | None, wait: float) -> _Extract:
    """Copy what the refresh needs out of the warehouse, holding it (read-only) only for that copy: the originals
    the index lacks (or holds with another text) into work/originals.parquet, the live articles that are gone,
    copies and feed tags. With `since`, only the rows loads wrote after it (when it still fits)."""
    names = [n for n, _ in segments]
    with database.connect(wh, read_only=True, wait=wait) as conn, database.transaction(conn):
        # One transaction: the mark and the rows read after it are of one state, even on a lake that other writers
        # commit to meanwhile.
        mark = _current_mark(conn)
        changed = _changed_since(conn, folder, names, tombstones, since, mark) if since is not None else None
        if changed is None:  # every stored original against every live article
            live = segs.live_keys(folder, names, tombstones)
            conn.register("search_base_keys", live.select(["article_id", "hkey"]))
            try:
                delta = conn.execute(database.query("search_delta")).fetch_arrow_table()
            finally:
                conn.unregister("search_base_keys")
            stored = delta["stored"].to_pylist()
            ids = sorted(i for i, s in zip(delta["article_id"].to_pylist(), stored, strict=True) if s)
            gone_ids = pa.array([i for i, s in zip(delta["article_id"].to_pylist(), stored, strict=True) if not s],
                                pa.int64())
            gone = live.filter(pc.is_in(live["article_id"], gone_ids)).select(["seg", "article_id"])
            copies = conn.execute(database.query("search_copies")).fetch_arrow_table()
        else:
            ids, gone, copies = changed
        conn.register("search_new_ids", pa.table({"article_id": pa.array(ids, pa.int64())}))
        try:
            # The new ones' text by id ranges: a scan with the text column would read every article's text.
            target = segs.lit(str(work / "originals.parquet"))
            conn.execute(f"copy (select * from ({database.query('search_new')}) where {_ranges(ids)} "
                         f"order by article_id) to {target} (format parquet, row_group_size 20000)")
        finally:
            conn.unregister("search_new_ids")
        feeds = conn.execute(database.query("search_feeds")).fetch_arrow_table()
    return _Extract(len(ids), copies, feeds, gone, mark, changed is not None)


def _current_mark(conn: duckdb.DuckDBPyConnection) -> _Mark:
    """The warehouse's mark, inside the caller's transaction; without a load sequence (a warehouse of a schema
    before 0010, read before the next ingest migrates it), one that makes the next refresh compare everything."""
    try:
        seq, stored = conn.execute(database.query("search_mark")).fetchone()
    except duckdb.CatalogException:
        conn.execute("rollback")
        conn.execute("begin transaction")
        return _Mark(None, None)
    return _Mark(None if seq is None else int(seq), int(stored))


def _changed_since(conn: duckdb.DuckDBPyConnection, folder: Path, segments: list[str], tombstones: pa.Table,
                   since: _Mark, now: _Mark) -> tuple[list[int], pa.Table, pa.Table] | None:
    """(ids to index, (seg, article_id) to tombstone, copies recorded since) from the rows loads wrote after
    `since`; None when `since` does not fit the warehouse `now` and everything must be compared."""
    if since.load_seq is None or now.load_seq is None or now.load_seq < since.load_seq:
        return None
    found = conn.execute(database.query("search_since"), {"since": since.load_seq}).fetch_arrow_table()
    live = segs.live_keys(folder, segments, tombstones, ids=found)
    held = dict(zip(live["article_id"].to_pylist(), zip(live["seg"].to_pylist(), live["hkey"].to_pylist(),
                                                        strict=True), strict=True))
    rows = found.to_pylist()
    # Each article a load wrote is new, or stands in for one deleted in its load (a changed seed): the count adds
    # up only then.
    if now.stored != since.stored + sum(r["kind"] == "article" and r["article_id"] not in held for r in rows):
        return None
    ids: set[int] = set()
    gone: set[tuple[str, int]] = set()  # a set: an article stored and recorded as a copy since is two rows
    for r in rows:
        seg, hkey = held.get(r["article_id"], (None, None))
        if seg is not None and (r["kind"] != "article" or not r["original"] or hkey != r["hkey"]):
            gone.add((seg, r["article_id"]))
        if r["kind"] == "article" and r["original"] and (seg is None or hkey != r["hkey"]):
            ids.add(r["article_id"])
    copies = conn.execute(database.query("search_copies_since"), {"since": since.load_seq}).fetch_arrow_table()
    ordered = sorted(gone)
    return (sorted(ids), pa.table({"seg": pa.array([g[0] for g in ordered], pa.string()),
                                   "article_id": pa.array([g[1] for g in ordered], pa.int64())}), copies)


def _add_copies(before: pa.Table, since: pa.Table) -> pa.Table:
    """The head's copy counts with those recorded since added."""
    with contextlib.closing(segs.plain()) as conn:
        conn.register("c_before", before)
        conn.register("c_since", since)
        return conn.execute("select article_id, sum(copies)::integer as copies from (select * from c_before "
                            "union all select * from c_since) group by article_id").fetch_arrow_table()
