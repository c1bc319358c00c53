"""Searching the full-text index (flows/warehouse/search_index.py) from the CLI, SQL and Python. No Prefect here.

Everything rests on the index's files attached read-only to a connection (`attach`): the head as `search_head`,
its segments as `search_s0`, `search_s1`, ... (the head names them). `install` also creates the table macro
`search_articles(query, lang := NULL)` (flows/warehouse/search_plan.py: one statement, for `newsflow sql`, the DuckDB
CLI and Python). `newsflow search` validates the query with flows/core/searchquery.py, then runs the same plan
(`Searcher.search`) in few statements: the query's words stemmed (one), the postings of their keys read with
constants (so DuckDB's zone maps skip the rest), tombstones left out by one anti-join, the articles matched and
ranked by BM25 (one); phrases checked on the best-ranked only, in batches growing fourfold, until `limit` results
hold; then the results' metadata and text read from the segments' text files by offset, and a snippet per result.
A Searcher keeps its connection (fts loaded, the index attached) for callers that search more than once.
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from collections.abc import Generator
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from flows.core.errors import SearchIndexDamaged, WarehouseMissing
from flows.core.searchquery import Query
from flows.core.settings import WarehouseSettings
from flows.warehouse import search_phrase as phrase
from flows.warehouse import search_plan as plan
from flows.warehouse import search_rank as rank
from flows.warehouse.database import first_line
from flows.warehouse.search_index import INDEXES, index_name, load_fts, segments_dir
from flows.warehouse.search_postings import NULL_DATE, DamagedPostingsError, open_postings, post_file
from flows.warehouse.search_segments import FORMAT, SPLIT, lit, term_key, text_file, unpack_record

HEAD = plan.HEAD
_SNIPPET_WORDS = 30
_ATTEMPTS = 5  # a refresh may remove a segment between reading the head and attaching it: read the head again
_BATCH = 50  # ranked articles whose phrases are checked at a time


class SearchIndexMissing(WarehouseMissing):
    """No search index beside the warehouse yet (or one of an older format)."""


def attach(conn: duckdb.DuckDBPyConnection, settings: WarehouseSettings, *, segments: bool = True) -> list[str]:
    """Attach the head and (unless `segments` is False) its segments read-only; the segments' names, in the order
    of their aliases."""
    head = settings.search_path
    for attempt in range(_ATTEMPTS):
        if not head.exists():
            raise SearchIndexMissing(f"{head}: no search index yet (`newsflow search --rebuild` builds it; "
                                     "each ingest that loads articles refreshes it)")
        _attach_head(conn, head)
        try:
            fmt = conn.execute(f"select max(format) from {HEAD}.meta").fetchone()[0]
            if fmt != FORMAT:
                raise SearchIndexMissing(f"{head}: a search index of an older format (the next refresh, "
                                         "`newsflow maintain --step cache` or `newsflow search --rebuild` "
                                         "brings it up to date)")
            names = [r[0] for r in conn.execute(f"select name from {HEAD}.segments order by pos").fetchall()]
            for i, name in enumerate(names if segments else []):
                conn.execute(f"attach {lit(str(segments_dir(settings) / f'{name}.duckdb'))} as search_s{i} "
                             "(read_only)")
            return names
        except duckdb.IOException:
            if attempt == _ATTEMPTS - 1:
                raise
            for (db,) in conn.execute("select database_name from duckdb_databases() where database_name = ? "
                                      "or database_name like 'search\\_s%' escape '\\'", [HEAD]).fetchall():
                conn.execute(f"detach {db}")
        except BaseException:
            conn.execute(f"detach {HEAD}")
            raise
    raise AssertionError("unreachable")


def install(conn: duckdb.DuckDBPyConnection, settings: WarehouseSettings) -> list[str]:
    """Make `search_articles(query, lang := NULL)` available in `conn`: load fts, attach the index, create the
    macros (temporary: nothing is written to the connection's database). Returns the segments attached."""
    load_fts(conn)
    segments = attach(conn, settings)
    for statement in macro_sql(segments):
        conn.execute(statement)
    return segments


def macro_sql(segments: list[str], gen: str | None = None) -> list[str]:
    """The statement creating `search_articles(q, lang := NULL)` over the attached index."""
    return [plan.macro(segments, gen)]


def script(settings: WarehouseSettings, fts: Path | None = None) -> str:
    """The SQL a DuckDB CLI or another program runs to get the macro: load fts, attach, create the macros. It names
    the segments of the index as it is now; the macro stops with a one-line error once a refresh changed it."""
    from flows.warehouse.lake import extension_file
    from flows.warehouse.search_segments import read_head

    head = read_head(settings.search_path)
    if head is None:
        raise SearchIndexMissing(f"{settings.search_path}: no search index yet (`newsflow search --rebuild` "
                                 "builds it)")
    meta, segments, _ = head
    lines = ["-- newsflow full-text search: attach the index beside the warehouse and define search_articles().",
             f"-- The fts extension of DuckDB {duckdb.__version__}, from its PyPI wheel; a DuckDB CLI of another "
             "version: replace the load with `install fts; load fts;`.",
             "-- The index as it is now: print this again after the next refresh.",
             f"load {lit(str(fts or extension_file('fts')))};",
             f"attach if not exists {lit(str(settings.search_path))} as {HEAD} (read_only);"]
    lines += [f"attach if not exists {lit(str(segments_dir(settings) / f'{n}.duckdb'))} as search_s{i} (read_only);"
              for i, (n, _) in enumerate(segments)]
    names = [n for n, _ in segments]
    return "\n".join(lines + [s + ";" for s in macro_sql(names, str(meta["gen"]))]) + "\n"


def _stepwise(conn: duckdb.DuckDBPyConnection, index: Opened, query: Query, filters: Filters
              ) -> list[tuple[Any, ...]]:
    """The plan of search_plan: the query's words stemmed in DuckDB (one statement), then matched, scored and
    ranked with numpy over the segments' postings files (search_rank); the rows of `_final`, best first."""
    rows, groups = _stemmed(conn, query, filters.lang)
    q = rank.terms(rows)
    scored = rank.score(index.parts, q, groups, index.stats, _allowed(conn, index, filters))
    ranking = rank.Ranking(scored, index.parts)
    if not any(t.phrase for t in q):
        top = [(int(ranking.seg[i]), int(ranking.dn[i]), float(ranking.scores[i]))
               for i in ranking.best(filters.limit)]
    else:  # ranked as if every phrase held (a phrase does not change a score), then checked best first
        top = _checked(conn, index, _batches(ranking, scored, filters.limit), groups, filters.limit)
    return _final(conn, index, top)


def _stemmed(conn: duckdb.DuckDBPyConnection, query: Query, lang: str | None
             ) -> tuple[list[dict[str, object]], int]:
    """The query's words as search_plan's `search_q` has them (t, g, neg, phrase, raw, idx, h: one row per word
    and language group, in the order of the terms, their words and INDEXES) and its number of positive groups
    (search_groups; 0 without a word). One plain statement: the plan's CTEs (windows, materialized steps) cost
    DuckDB ~13 ms to plan; the split, accents and stems are the same functions, the rest is counted here."""
    terms = query.rows()
    # Python values as parameters cost DuckDB an attempted `import pandas` each (about a millisecond when it is not
    # installed): the query's terms go in as an Arrow table.
    conn.register("search_query_terms", pa.table({
        "t": pa.array([r["t"] for r in terms], pa.int64()), "raw": pa.array([r["raw"] for r in terms], pa.string())}))
    groups = "(values " + ", ".join(f"({i}, {lit(k)}, {lit(v)})" for i, (k, v) in enumerate(INDEXES.items())) \
        + ") i(ipos, idx, stemmer)"
    found = conn.execute(f"""
        select w.t, w.pos, i.idx, {term_key('i.idx', 'stem(w.tok, i.stemmer)')}::varchar as h
        from (select t, strip_accents(unnest(toks)) as tok, unnest(range(len(toks))) as pos
              from (select t, regexp_split_to_array(lower(raw), {lit(SPLIT)}) as toks from search_query_terms)) w,
             {groups}
        where w.tok <> '' and ($lang is null or {plan.LANG_INDEX.replace('lang', '$lang')} = i.idx)
        order by w.t, w.pos, i.ipos""", {"lang": lang}).fetchall()
    conn.unregister("search_query_terms")
    words: dict[tuple[int, str], int] = {}
    for t, _, idx, _ in found:
        words[(t, idx)] = words.get((t, idx), 0) + 1
    by_t = {int(r["t"]): r for r in terms}  # type: ignore[call-overload]
    rows = [{"t": t, "g": by_t[t]["g"], "neg": by_t[t]["neg"], "phrase": bool(by_t[t]["quoted"]) or words[(t, idx)] > 1,
             "raw": by_t[t]["raw"], "idx": idx, "h": h} for t, _, idx, h in found]
    return rows, len({r["g"] for r in rows if not r["neg"]})


def _allowed(conn: duckdb.DuckDBPyConnection, index: Opened, filters: Filters) -> list[np.ndarray | None]:
    """Per segment, the articles its filters keep (None: no filter): the conditions of search_plan.results on
    the articles' language, date and feed (with the feeds' tags from the head), and `filters.ids`."""
    if not (filters.ids is not None or filters.lang or filters.since or filters.until or filters.feeds
            or filters.tags):
        return [None] * len(index.parts)
    since = until = None
    if filters.since or filters.until:  # the SQL's date-to-timestamptz cast (the connection's time zone)
        # The day after `until` in SQL, whose dates go past 9999-12-31 (Python's do not).
        since, until = conn.execute("select epoch_us($s::timestamptz), epoch_us(($u::date + 1)::timestamptz)", {
            "s": filters.since, "u": filters.until}).fetchone()
    feeds: set[str] | None = set(filters.feeds) if filters.feeds else None
    tagged: set[str] | None = None
    if filters.tags:
        tagged = {r[0] for r in conn.execute(f"select feed from {HEAD}.feeds where list_has_any(tags, $t)",
                                             {"t": list(filters.tags)}).fetchall()}
    want = filters.lang.lower() if filters.lang else None

    def lang_ok(value: str) -> bool:
        low = value.lower()
        return low == want or low.split("-")[0] == want

    out: list[np.ndarray | None] = []
    for seg in index.parts:
        p = seg.post
        keep = np.ones(len(p.ids), bool)
        if filters.ids is not None:
            keep &= np.isin(p.ids, np.asarray(filters.ids, np.int64))
        if want is not None:
            by_lang = np.array([lang_ok(x) for x in p.languages] + [False], bool)
            by_idx = np.array([lang_ok(x) for x in p.indexes], bool)
            keep &= np.where(p.lang >= 0, by_lang[p.lang], by_idx[p.idx])
        if since is not None:
            keep &= (p.date >= since) & (p.date != NULL_DATE)
        if until is not None:
            keep &= (p.date < until) & (p.date != NULL_DATE)
        for names in (feeds, tagged):
            if names is not None:
                codes = np.array([i for i, f in enumerate(p.feeds) if f in names], np.int32)
                keep &= np.isin(p.feed, codes)
        out.append(keep)
    return out


@dataclass
class Batch:
    """Candidates best first: their segment, article number and score, and per term of the query which of them
    hold all its words (a phrase's order not checked yet)."""
    seg: np.ndarray
    dn: np.ndarray
    scores: np.ndarray
    matched: dict[rank.Term, np.ndarray]


def _batches(ranking: rank.Ranking, scored: list[rank.Scored], limit: int) -> Generator[Batch, int, None]:
    """The candidates best first, a batch at a time. The caller sends back how many of the last batch held; the
    next batch is what that rate says the rest of `limit` needs, with a margin, at most twice the last (a phrase
    of common words may need thousands of candidates; a batch too large reads texts for nothing)."""
    start, size, found = 0, max(_BATCH, limit), 0
    while start < len(ranking) and found < limit:
        best = ranking.best(start + size)[start:]
        seg, dn = ranking.seg[best], ranking.dn[best]
        matched = {t: np.zeros(len(best), bool) for x in scored for t in x.matched}
        for s in np.unique(seg).tolist():
            sel = seg == s
            for t, mask in scored[s].matched.items():
                matched[t][sel] = mask[dn[sel]]
        found += yield Batch(seg, dn, ranking.scores[best], matched)
        start += size
        rate = found / start
        size = size * 2 if not found else max(_BATCH, min(size * 2, math.ceil((limit - found) / rate * 1.5)))


def _attach_head(conn: duckdb.DuckDBPyConnection, head: Path) -> None:
    """Attach the head read-only. A refresh replaces it whole (os.replace) and only ever reads it, so a head that
    DuckDB cannot open is damaged on disk (cut short, overwritten, a folder in its place), never half-written: one
    line naming the file and what mends it, where DuckDB's own error ended `newsflow search` as unexpected."""
    try:
        conn.execute(f"attach {lit(str(head))} as {HEAD} (read_only)")
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():  # another process's lock, not damage: as DuckDB says it
            raise
        if head.is_dir():
            raise SearchIndexDamaged(f"{head}: a folder where the search index's head file belongs; move it away, "
                                     "then `newsflow search --rebuild` builds the index again") from exc
        raise damaged(f"{head} cannot be read ({first_line(exc)})") from exc
    try:  # a DuckDB file, but is it a head? (another file in its place ended `search` as unexpected)
        conn.execute(f"select format from {HEAD}.meta limit 0")
    except duckdb.CatalogException as exc:
        conn.execute(f"detach {HEAD}")
        raise damaged(f"{head} is a DuckDB file without the index's tables") from exc


def damaged(problem: object) -> SearchIndexDamaged:
    return SearchIndexDamaged(f"search index damaged: {problem}; `newsflow search --rebuild` builds it again from "
                              "the warehouse (so does `newsflow maintain --step cache`)")


def _record(index: Opened, seg: int, pos: int, meta: int, title: int, text: int) -> tuple[bytes, str, str]:
    """(meta JSON, title, text) of one record of a segment's text file. A file shorter than its postings say (cut
    short on disk), or a record whose bytes no longer decode (overwritten), is refused here, where it is read,
    rather than by measuring every record at each open (3-34 ms at a million articles)."""
    size = meta + title + text
    data = os.pread(index.texts[seg], size, pos)
    if len(data) < size:
        raise damaged(f"{text_file(index.folder, index.segments[seg])}: cut short at "
                      f"{os.fstat(index.texts[seg]).st_size} bytes, a record needs {pos + size}")
    try:
        return unpack_record(index.parts[seg].post.text_codec, data, meta, title)
    except (ValueError, OSError) as exc:  # UTF-8 or zstd refuses it
        raise damaged(f"{text_file(index.folder, index.segments[seg])}: the record at {pos}: {exc}") from exc


def _texts(index: Opened, seg: np.ndarray, dn: np.ndarray) -> list[tuple[str, str]]:
    """(title, text) of articles from their segments' text files (the offsets gathered per segment)."""
    cols = np.zeros((4, len(seg)), np.int64)  # pos, meta, title and text bytes
    for s in np.unique(seg).tolist():
        sel = seg == s
        p, d = index.parts[s].post, dn[sel]
        cols[:, sel] = p.pos[d], p.meta[d], p.title[d], p.text[d]
    return [_record(index, s, pos, meta, title, text)[1:]
            for s, pos, meta, title, text in zip(seg.tolist(), *cols.tolist(), strict=True)]


def _read(index: Opened, seg: int, dn: int) -> tuple[bytes, str, str]:
    """(meta JSON, title, text) of one article from its segment's text file."""
    p = index.parts[seg].post
    return _record(index, seg, int(p.pos[dn]), int(p.meta[dn]), int(p.title[dn]), int(p.text[dn]))


def _final(conn: duckdb.DuckDBPyConnection, index: Opened, top: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The result rows (article_id, score, title, url, feed, date, language, copies, tags, segment, text) of `top`
    (seg, article number, score), in its order."""
    if not top:
        return []
    ids = [int(index.parts[seg].post.ids[dn]) for seg, dn, _ in top]
    dates = [int(index.parts[seg].post.date[dn]) for seg, dn, _ in top]
    conn.register("search_found", pa.table({"article_id": pa.array(ids, pa.int64()),
                                            "us": pa.array(dates, pa.int64())}))
    # The date as DuckDB gives a timestamptz (in the connection's time zone), the copies from the head.
    extra = {r[0]: r[1:] for r in conn.execute(f"""
        select f.article_id, case when f.us = {int(NULL_DATE)} then null
                                  else to_timestamp(0) + to_microseconds(f.us) end,
               coalesce(c.copies, 0)
        from search_found f left join {HEAD}.copies c using (article_id)""").fetchall()}
    rows = []
    for (seg, dn, score), article_id in zip(top, ids, strict=True):
        meta, _, text = _read(index, seg, dn)
        m = json.loads(meta)
        day, copies = extra[article_id]
        rows.append([article_id, score, m["title"], m["url"], m["feed"], day, m["language"], copies, None,
                     seg, text])
    feeds = sorted({r[4] for r in rows if r[4] is not None})
    tags = dict(conn.execute(f"select feed, tags from {HEAD}.feeds where feed in (select unnest($f))",
                             {"f": feeds}).fetchall()) if feeds else {}
    for r in rows:
        r[8] = tags.get(r[4])
    return [tuple(r) for r in rows]


@dataclass(frozen=True)
class Filters:
    lang: str | None = None
    since: date | None = None
    until: date | None = None  # inclusive: the whole day
    feeds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    limit: int = 20
    ids: tuple[int, ...] | None = None  # only these articles (a run's new ones, for saved searches)


@dataclass(frozen=True)
class Hit:
    article_id: int
    score: float
    title: str
    url: str
    feed: str | None
    date: Any
    language: str | None
    copies: int
    snippet: str  # matched words between MARK_OPEN and MARK_CLOSE


MARK_OPEN, MARK_CLOSE = "«", "»"


def _checked(conn: duckdb.DuckDBPyConnection, index: Opened, batches: Generator[Batch, int, None],
             groups: int, limit: int) -> list[tuple[Any, ...]]:
    """The first `limit` candidates of `batches` whose phrases hold (and whose excluded phrases do not), as
    (seg, article number, score), checked on their text a batch at a time (a phrase of common words may need
    thousands of candidates): in Python where the text allows it (search_phrase), the others in DuckDB as the
    macro does."""
    out: list[tuple[Any, ...]] = []
    held = None
    found: dict[str, phrase.Phrase | None] = {}
    while True:
        try:
            batch = batches.send(held)  # type: ignore[arg-type]
        except StopIteration:
            break
        ch = phrase.chars()
        texts = _texts(index, batch.seg, batch.dn)
        bodies = [title + " " + text for title, text in texts]
        kind = phrase.kinds(ch, bodies)
        n = len(bodies)
        yes: dict[str, np.ndarray] = {}  # per phrase: held (True) or not, where known
        unknown: dict[str, np.ndarray] = {}
        for raw in {t.raw for t in batch.matched if t.phrase}:
            if raw not in found:
                ws = phrase.words(ch, raw)
                found[raw] = phrase.pattern(ch, ws) if ws else None
            pat = found[raw]
            got = phrase.holds(ch, pat, bodies, kind) if pat is not None else [None] * n
            yes[raw] = np.array([g is True for g in got], bool)
            unknown[raw] = np.array([g is None for g in got], bool)
        # The SQL's rule: every positive group has a term that holds, no excluded term holds.
        ok = np.ones(n, bool)
        rest = np.zeros(n, bool)
        passing = {t: m & yes[t.raw] if t.phrase else m for t, m in batch.matched.items()}
        for t, m in batch.matched.items():
            if t.phrase:
                rest |= m & unknown[t.raw]
        for g in sorted({t.g for t in batch.matched if not t.neg}):
            any_of = np.zeros(n, bool)
            for t, m in passing.items():
                if t.g == g and not t.neg:
                    any_of |= m
            ok &= any_of
        if len({t.g for t in batch.matched if not t.neg}) != groups:
            ok[:] = False
        for t, m in passing.items():
            if t.neg:
                ok &= ~m
        ok &= ~rest
        if rest.any():
            rows = []
            for j in np.flatnonzero(rest).tolist():
                ths = [{"g": t.g, "neg": t.neg, "phrase": t.phrase, "raw": t.raw}
                       for t, m in batch.matched.items() if m[j]]
                rows.append((j, 0, ths, *texts[j]))
            for j, _ in _checked_sql(conn, rows, groups):
                ok[j] = True
        picked = np.flatnonzero(ok).tolist()
        out += [(int(batch.seg[j]), int(batch.dn[j]), float(batch.scores[j])) for j in picked]
        held = len(picked)
    return out[:limit]


def _checked_sql(conn: duckdb.DuckDBPyConnection, rest: list[tuple[Any, ...]], groups: int) -> set[tuple[int, int]]:
    """Which candidates (seg, dn: any two numbers naming it; ths: the terms it matched, title, text) hold, checked
    by DuckDB as search_plan does."""
    conn.register("search_check", pa.table({
        "seg": pa.array([r[0] for r in rest], pa.int32()), "dn": pa.array([r[1] for r in rest], pa.int64()),
        "ths": pa.array([r[2] for r in rest], pa.list_(pa.struct([
            ("g", pa.int64()), ("neg", pa.bool_()), ("phrase", pa.bool_()), ("raw", pa.string())]))),
        "title_text": pa.array([r[3] for r in rest], pa.string()),
        "text": pa.array([r[4] for r in rest], pa.string())}))
    rows = conn.execute(f"""
        with tv as (
            select seg, dn, th.g, th.neg
            from (select seg, dn, title_text, text, unnest(ths) as th from search_check) x
            where not x.th.phrase or contains({plan.norm_text('x')}, {plan.norm_phrase('x.th.raw')}))
        select seg, dn from tv where not neg group by all having count(distinct g) = {int(groups)}
        except select seg, dn from tv where neg""").fetchall()
    conn.unregister("search_check")
    return {(r[0], r[1]) for r in rows}


@dataclass
class Opened:
    """The index open on a connection: its head attached, its segments' text files open and postings files mapped
    (a merge may delete a file: an open one stays readable), the BM25 statistics and the tombstones."""
    segments: list[str]
    texts: list[int]
    parts: list[rank.Segment]
    stats: dict[str, tuple[int, int]]
    folder: Path = Path()  # where the segments' files are

    def close(self) -> None:
        for fd in self.texts:
            os.close(fd)
        self.texts = []
        self.parts = []


def _detach_all(conn: duckdb.DuckDBPyConnection) -> None:
    for (db,) in conn.execute("select database_name from duckdb_databases() where database_name = ? "
                              "or database_name like 'search\\_s%' escape '\\'", [HEAD]).fetchall():
        conn.execute(f"detach {db}")


def open_index(conn: duckdb.DuckDBPyConnection, settings: WarehouseSettings) -> Opened:
    """Attach the head (`attach`; the segments' DuckDB files are for the SQL macro), open its segments' text files,
    map their postings files, read the statistics and tombstones."""
    folder = segments_dir(settings)
    for attempt in range(_ATTEMPTS):
        names = attach(conn, settings, segments=False)
        fds: list[int] = []
        try:
            parts = []
            for name in names:
                fds.append(os.open(text_file(folder, name), os.O_RDONLY))
                parts.append(rank.Segment(open_postings(post_file(folder, name))))
        except FileNotFoundError as exc:  # merged away between reading the head and opening: read the head again
            for fd in fds:
                os.close(fd)
            _detach_all(conn)
            if attempt == _ATTEMPTS - 1:  # gone for good (the segments' folder deleted): a bare errno before
                raise damaged(f"{exc.filename} is missing") from exc
            continue
        except DamagedPostingsError as exc:  # a file cut short or overwritten: say which, and how to mend it
            for fd in fds:
                os.close(fd)
            _detach_all(conn)
            raise damaged(exc) from exc
        stats = {r[0]: (int(r[1]), int(r[2])) for r in conn.execute(
            f"select idx, n, total_len from {HEAD}.stats").fetchall()}
        dead = conn.execute(f"select s.pos, t.article_id from {HEAD}.tombstones t "
                            f"join {HEAD}.segments s on s.name = t.seg").fetch_arrow_table()
        pos, ids = dead["pos"].to_numpy(), dead["article_id"].to_numpy()
        for i, part in enumerate(parts):
            gone = ids[pos == i]
            if len(gone):
                part.dead = np.zeros(len(part.post.ids), bool)
                part.dead[np.searchsorted(part.post.ids, gone)] = True
        return Opened(names, fds, parts, stats, folder)
    raise AssertionError("unreachable")


def _connect() -> duckdb.DuckDBPyConnection:
    # Unsigned extensions allowed: DuckDB then loads fts (from its PyPI wheel, by path) without checking its
    # signature, a hash of its 11 MB that cost ~90 ms of CPU per search. Only this connection, which runs only
    # newsflow's own SQL, allows them (never the connection of `newsflow sql`).
    # One thread, set at the start (no thread pool to start and stop): a search is many small operators, where a
    # second thread costs more in hand-overs than it saves (CPU p50 halved at 10,000 and 100,000 articles,
    # benchmarks/results/search.md).
    conn = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                              "autoload_known_extensions": False,
                                              "allow_unsigned_extensions": True, "threads": 1})
    try:
        conn.execute("set enable_progress_bar = false")  # it draws on stdout, into `--format csv|json` results
        load_fts(conn)
    except BaseException:
        conn.close()
        raise
    return conn


class Searcher:
    """One connection with fts loaded and the index attached, for a caller that searches several times (saved
    searches, a long-lived process): then a search costs its query only. It attaches the index again when a
    refresh has replaced the head since (`with Searcher(settings) as s: s.search(query, filters)`)."""

    def __init__(self, settings: WarehouseSettings) -> None:
        self.settings = settings
        self.conn = _connect()
        self.index: Opened | None = None
        self._stamp: tuple[int, int] | None = None

    def _current(self) -> Opened:
        try:
            st = self.settings.search_path.stat()
            stamp: tuple[int, int] | None = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if self.index is None or stamp != self._stamp:
            if self.index is not None:
                self.index.close()
                self.index = None
                _detach_all(self.conn)
            self.index = open_index(self.conn, self.settings)
            self._stamp = stamp
        return self.index

    def search(self, query: Query, filters: Filters) -> list[Hit]:
        """The best `filters.limit` matches of `query`, best first, each with a snippet."""
        try:
            index = self._current()
            rows = _stepwise(self.conn, index, query, filters)
        except duckdb.IOException as exc:
            # A head cut short past its catalog attaches, then fails where a query reads a missing block.
            head = self.settings.search_path
            if str(head) not in str(exc):
                raise
            raise damaged(f"{head} cannot be read ({first_line(exc)})") from exc
        stems = _stems(self.conn, query, [r[10] for r in rows], filters.lang)
        return [Hit(r[0], float(r[1]), r[2] or "", r[3], r[4], r[5], r[6], int(r[7]), snippet(r[10], stems))
                for r in rows]

    def close(self) -> None:
        if self.index is not None:
            self.index.close()
        self.conn.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def search(settings: WarehouseSettings, query: Query, filters: Filters) -> list[Hit]:
    """The best `filters.limit` matches of `query`, best first, each with a snippet (a Searcher of one search)."""
    with Searcher(settings) as searcher:
        return searcher.search(query, filters)


def indexed(settings: WarehouseSettings, ids: list[int]) -> set[int]:
    """Which of `ids` the index holds now (its live articles). Raises SearchIndexMissing without an index,
    duckdb.Error for an unreadable one."""
    with duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                            "autoload_known_extensions": False}) as conn:
        segments = attach(conn, settings)
        conn.register("search_asked", pa.table({"article_id": pa.array(ids, pa.int64())}))
        rows = conn.execute(f"select distinct article_id from ({plan.docs(segments, 'article_id')}) "
                            "where article_id in (select article_id from search_asked)").fetchall()
    return {r[0] for r in rows}


_TOKEN = re.compile(r"[^\W_]+")


@lru_cache(maxsize=65536)
def fold(word: str) -> str:
    """A word as the index stores it before stemming: lower case, accents stripped."""
    if word.isascii():  # nothing to decompose (a new process folds thousands of the results' words)
        return word.lower()
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(c))


def _stems(conn: duckdb.DuckDBPyConnection, query: Query, texts: Any, lang: str | None) -> set[str]:
    """Folded words of the texts whose stem (in any index's stemmer, or the --lang one) is a query word's stem."""
    stemmers = [INDEXES[index_name(lang)]] if lang else sorted(set(INDEXES.values()))
    qwords = sorted({fold(w) for t in query.positive for w in t.words})
    # Snowball stemmers (English, French) only take suffixes off: a word can share a query word's stem only if it
    # starts with its first two letters, so only those are stemmed.
    heads = {w[:2] for w in qwords}
    twords = sorted({f for body in texts for w in _TOKEN.findall(body) if (f := fold(w))[:2] in heads})
    if not qwords or not twords:
        return set(qwords)
    # As Arrow tables: a Python list of thousands of strings as a parameter costs DuckDB a lookup per element.
    conn.register("search_text_words", pa.table({"w": twords}))
    conn.register("search_query_words", pa.table({"w": qwords}))
    conn.register("search_stemmers", pa.table({"s": stemmers}))
    rows = conn.execute("""
        with q as (select s, stem(w, s) as st from search_stemmers, search_query_words),
        t as (select w, s, stem(w, s) as st from search_stemmers, search_text_words)
        select distinct t.w from t join q using (s, st)""").fetchall()
    return {r[0] for r in rows} | set(qwords)


def snippet(body: str, matched: set[str], words: int = _SNIPPET_WORDS) -> str:
    """The stretch of `words` words of `body` with the most matched words, those marked «like this»."""
    tokens = list(_TOKEN.finditer(body))
    if not tokens:
        return ""
    hits = [i for i, m in enumerate(tokens) if fold(m.group()) in matched]
    best = 0
    if hits:
        best = max(hits, key=lambda i: sum(1 for j in hits if i <= j < i + words))
        best = max(0, min(best - 3, len(tokens) - words))
    window = tokens[best:best + words]
    start, end = window[0].start(), window[-1].end()
    out, pos = [], start
    for m in window:
        if fold(m.group()) in matched:
            out.append(body[pos:m.start()] + MARK_OPEN + m.group() + MARK_CLOSE)
            pos = m.end()
    out.append(body[pos:end])
    text = " ".join("".join(out).split())
    return ("… " if start > 0 else "") + text + (" …" if end < len(body.rstrip()) else "")
