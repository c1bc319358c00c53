"""The full-text search index: DuckDB's `fts` extension over the stored originals, in side files beside the warehouse.

Why side files: a DuckLake cannot hold an index, and a reader of the DuckDB warehouse file would hold up the next
load; the index is derived data that readers open read-only while loads go on. Layout, for `<stem>.duckdb`
(WarehouseSettings.search_path):

- `<stem>.search.duckdb`, the base segment: every original (an article not recorded as a copy) when it was built.
- `<stem>.search-delta.duckdb`, the delta segment: the originals loaded (or whose text changed) since the base,
  the base articles readers must hide (`gone`), and the current copies count and feed tags. It names the base it
  goes with (`meta.base_gen`); a reader that finds another base ignores it (flows/warehouse/search.py).

Each segment holds one FTS index per language group, with its Snowball stemmer (INDEXES): its own BM25 statistics,
accents stripped, no stop words (a phrase or an AND query with "the" must still match). Results of both segments
are merged by score.

DuckDB's FTS has no incremental update, so `refresh` rewrites only the delta (articles since the base), and
rebuilds the base when the delta passes MERGE_SHARE of it. Every segment is built in a temporary file and renamed
over the old one (os.replace): a reader keeps the file it opened and never sees a half-built index. The delta is
found by comparing (article_id, text hash) with the base, not by a timestamp, so a load that committed while the
base was built, a changed seed or a copy demoted by `reprocess` are all caught by the next refresh.

No Prefect here: the run calls `refresh(settings)` after its last load, `newsflow search --rebuild` calls
`refresh(settings, rebuild=True)`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from flows.core.errors import WarehouseError
from flows.core.settings import Settings, WarehouseSettings
from flows.warehouse import database, lake
from flows.warehouse.staging import fsync

log = logging.getLogger("newsflow.search")

FORMAT = 1
# index name -> Snowball stemmer; a language without its own index goes to `other` (no stemming).
INDEXES = {"en": "english", "fr": "french", "other": "none"}
# What is not part of a word: the index and the query split on it (after lower case and accents stripped).
IGNORE = r"[^\p{L}\p{N}]+"
# The base is rebuilt when the delta holds more than this share of it (and more than MERGE_MIN articles): a
# refresh rewrites at most ~MERGE_SHARE of the index, a base rebuild happens once per that many new articles.
MERGE_SHARE = 0.10
MERGE_MIN = 2_000
_WAIT = 10.0  # seconds a refresh waits for the warehouse before leaving the index for the next run
_EXTENSION_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
_BASE_KEYS = pa.schema([("article_id", pa.int64()), ("hkey", pa.string())])


@dataclass(frozen=True)
class Refresh:
    """What one refresh did. `mode`: base (rebuilt everything), delta (rewrote the delta) or skipped."""
    mode: str
    articles: int  # originals searchable after it
    indexed: int  # articles written into a segment by it
    seconds: float
    reason: str = ""  # why it rebuilt, or why it skipped


def delta_path(settings: WarehouseSettings) -> Path:
    return settings.search_delta_path


def index_name(language: str | None) -> str:
    """The index an article in `language` goes to."""
    key = (language or "").split("-")[0].lower()
    return key if key in INDEXES else "other"


def load_fts(conn: duckdb.DuckDBPyConnection) -> None:
    """Load the fts extension from its PyPI wheel by path (never downloaded), as the DuckLake ones are."""
    conn.execute(f"load '{str(lake.extension_file('fts')).replace(chr(39), chr(39) * 2)}'")


def connect(path: Path | str = ":memory:", *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with autoload off and fts loaded."""
    conn = duckdb.connect(str(path), read_only=read_only, config=dict(_EXTENSION_CONFIG))
    try:
        load_fts(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def segment_meta(path: Path) -> dict[str, object] | None:
    """The `meta` row of a segment file; None when there is none or it is from another format."""
    if not path.exists():
        return None
    try:
        with contextlib.closing(duckdb.connect(str(path), read_only=True)) as conn:
            cols = [d[0] for d in conn.execute("select * from meta").description]
            row = conn.execute("select * from meta").fetchone()
    except duckdb.Error:
        return None
    meta = dict(zip(cols, row, strict=True)) if row else None
    return meta if meta and meta.get("format") == FORMAT else None


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


def refresh(settings: Settings, *, rebuild: bool = False, wait: float | None = None) -> Refresh:
    """Bring the search index up to date with the warehouse: rewrite the delta segment, or rebuild the base when
    asked, when there is none (or it is of another format), or when the delta has grown past MERGE_SHARE of it.

    Never raises for a warehouse that cannot be read now (busy, missing, or held by this very process with
    another configuration), nor for another refresh under way: it skips and says why in `reason` (the next refresh
    catches up, the delta being a comparison with the base). Other errors (a full disk) propagate.
    """
    wh = settings.warehouse
    start = time.perf_counter()
    # An article without a language goes to the index of the default language (as its entity tagging did).
    default = settings.entities.default_language

    def done(mode: str, articles: int = 0, indexed: int = 0, reason: str = "") -> Refresh:
        return Refresh(mode, articles, indexed, round(time.perf_counter() - start, 3), reason)

    if not database.exists(wh):
        return done("skipped", reason="no warehouse yet")
    with _refresh_lock(wh) as free:
        if not free:
            return done("skipped", reason="another refresh of the index is under way")
        base_meta = segment_meta(wh.search_path)
        reason = "asked" if rebuild else "no base segment" if base_meta is None else ""
        work = wh.search_path.with_name(wh.search_path.name + f".build{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            keys = _base_keys(wh.search_path) if not reason else _BASE_KEYS.empty_table()
            wait = _WAIT if wait is None else wait
            try:
                extract = _extract(wh, keys, work, rebuild_above=None if reason else _merge_limit(base_meta),
                                   wait=wait)
                if extract is None:  # the delta grew past its share: rebuild the base
                    reason = "the delta passed its share of the base"
                    extract = _extract(wh, _BASE_KEYS.empty_table(), work, rebuild_above=None, wait=wait)
            except WarehouseError as exc:  # busy, missing, or open in this process with another configuration
                return done("skipped", reason=database.first_line(exc))
            if reason:
                gen = uuid.uuid4().hex
                n = _write_segment(wh.search_path, work, {"kind": "base", "gen": gen, "base_gen": gen}, extract,
                                   default)
                empty = _Extract(0, extract.copies, extract.feeds, [])
                _write_segment(delta_path(wh), None, {"kind": "delta", "gen": uuid.uuid4().hex, "base_gen": gen},
                               empty, default)
                return done("base", n, n, reason)
            assert base_meta is not None
            n = _write_segment(delta_path(wh), work, {"kind": "delta", "gen": uuid.uuid4().hex,
                                                      "base_gen": base_meta["gen"]}, extract, default)
            total = int(base_meta["articles"]) - len(extract.gone) + n  # type: ignore[call-overload]
            return done("delta", total, n)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _merge_limit(meta: dict[str, object] | None) -> int:
    base = int(meta["articles"]) if meta else 0  # type: ignore[call-overload]
    return max(MERGE_MIN, int(base * MERGE_SHARE))


def _base_keys(path: Path) -> pa.Table:
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as conn:
        return conn.execute("select article_id, hkey from articles").fetch_arrow_table().cast(_BASE_KEYS)


@dataclass
class _Extract:
    rows: int  # originals copied into work/originals.parquet
    copies: pa.Table
    feeds: pa.Table
    gone: list[int]


def _extract(wh: WarehouseSettings, keys: pa.Table, work: Path, *, rebuild_above: int | None,
             wait: float) -> _Extract | None:
    """Copy what the segment needs out of the warehouse, holding it (read-only) only for that copy: the originals
    the base lacks into work/originals.parquet, the gone base ids, copies and feed tags. None when there are more
    than `rebuild_above` originals to copy (the caller rebuilds the base instead)."""
    with database.connect(wh, read_only=True, wait=wait) as conn:
        conn.register("search_base_keys", keys)
        try:
            originals = database.query("search_originals")
            if rebuild_above is not None:
                count = conn.execute(f"select count(*) from ({originals})").fetchone()[0]
                if count > rebuild_above:
                    return None
            target = str(work / "originals.parquet").replace("'", "''")
            conn.execute(f"copy ({originals}) to '{target}' (format parquet, row_group_size 20000)")
            rows = conn.execute(f"select count(*) from read_parquet('{target}')").fetchone()[0]
            gone = [r[0] for r in conn.execute(database.query("search_gone")).fetchall()]
            copies = conn.execute(database.query("search_copies")).fetch_arrow_table()
            feeds = conn.execute(database.query("search_feeds")).fetch_arrow_table()
        finally:
            conn.unregister("search_base_keys")
    return _Extract(int(rows), copies, feeds, gone)


def _write_segment(target: Path, work: Path | None, meta: dict[str, str], extract: _Extract, default: str) -> int:
    """Build a segment in a temporary file beside `target` and rename it over `target`; returns its articles."""
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    conn = connect(tmp)
    try:
        source = None if work is None else "read_parquet('" + str(work / "originals.parquet").replace("'", "''") + "')"
        _fill(conn, source, extract, default)
        n = conn.execute("select count(*) from articles").fetchone()[0]
        conn.execute("create table meta as select ?::integer as format, ?::varchar as kind, ?::varchar as gen, "
                     "?::varchar as base_gen, ?::bigint as articles, now() as built_at",
                     [FORMAT, meta["kind"], meta["gen"], meta["base_gen"], n])
        conn.execute("checkpoint")
    except BaseException:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise
    conn.close()
    fsync(tmp)
    os.replace(tmp, target)
    fsync(target.parent)
    return int(n)


def _fill(conn: duckdb.DuckDBPyConnection, source: str | None, extract: _Extract, default: str) -> None:
    """The tables of a segment: articles (metadata), docs_<index> (title and text) with their FTS indexes,
    copies, feeds and gone."""
    conn.execute("create table articles (article_id bigint, url varchar, title varchar, feed varchar, "
                 "language varchar, date timestamptz, loaded_at timestamptz, hkey varchar, idx varchar)")
    for idx in INDEXES:
        conn.execute(f"create table docs_{idx} (article_id bigint, title varchar, text varchar)")
    language = f"coalesce(language, '{default}')" if default.replace("-", "").isalnum() else "language"
    if source:
        conn.execute(f"insert into articles select article_id, url, title, feed, language, date, loaded_at, hkey, "
                     f"null from {source}")
        for idx in INDEXES:
            conn.execute(f"insert into docs_{idx} select article_id, coalesce(title, ''), text from {source} "
                         f"where {_index_expr(language)} = ?", [idx])
        conn.execute(f"update articles set idx = {_index_expr(language)}")
    for idx, stemmer in INDEXES.items():
        conn.execute(f"pragma create_fts_index('docs_{idx}', 'article_id', 'title', 'text', stemmer='{stemmer}', "
                     f"stopwords='none', ignore='{IGNORE}', strip_accents=1, lower=1, overwrite=1)")
    conn.register("copies_in", extract.copies)
    conn.execute("create table copies as select article_id::bigint as article_id, copies::integer as copies "
                 "from copies_in")
    conn.register("feeds_in", extract.feeds)
    conn.execute("create table feeds as select feed::varchar as feed, tags::varchar[] as tags from feeds_in")
    conn.register("gone_in", pa.table({"article_id": pa.array(extract.gone, pa.int64())}))
    conn.execute("create table gone as select article_id from gone_in")


def _index_expr(column: str) -> str:
    """SQL for index_name(column)."""
    keys = ", ".join(f"'{k}'" for k in INDEXES if k != "other")
    low = f"lower(split_part(coalesce({column}, ''), '-', 1))"
    return f"(case when {low} in ({keys}) then {low} else 'other' end)"
