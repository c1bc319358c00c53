"""Searching the full-text index (flows/warehouse/search_index.py) from the CLI, SQL and Python. No Prefect here.

Everything rests on the index's files attached read-only to a connection (`attach`): the head as `search_head`,
its segments as `search_s0`, `search_s1`, ... (the head names them). `install` also creates the table macro
`search_articles(query, lang := NULL)` (flows/warehouse/search_plan.py: one statement, for `newsflow sql`, the DuckDB
CLI and Python). `newsflow search` validates the query with flows/core/searchquery.py, then runs the same plan in
steps (`search`): the postings of the query's words read with constants (so DuckDB's zone maps skip the rest),
the articles ranked by BM25 before any phrase is checked, and phrases checked on the best ones only until
`limit` results are found; then a snippet per result.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from flows.core.errors import WarehouseMissing
from flows.core.searchquery import Query
from flows.core.settings import WarehouseSettings
from flows.warehouse import search_plan as plan
from flows.warehouse.search_index import INDEXES, index_name, load_fts, segments_dir
from flows.warehouse.search_segments import FORMAT, lit

HEAD = plan.HEAD
_SNIPPET_WORDS = 30
_ATTEMPTS = 5  # a refresh may remove a segment between reading the head and attaching it: read the head again
_BATCH = 50  # ranked articles whose phrases are checked at a time


class SearchIndexMissing(WarehouseMissing):
    """No search index beside the warehouse yet (or one of an older format)."""


def attach(conn: duckdb.DuckDBPyConnection, settings: WarehouseSettings) -> list[str]:
    """Attach the head and its segments read-only; the segments' names, in the order of their aliases."""
    head = settings.search_path
    for attempt in range(_ATTEMPTS):
        if not head.exists():
            raise SearchIndexMissing(f"{head}: no search index yet (`newsflow search --rebuild` builds it; "
                                     "each ingest that loads articles refreshes it)")
        conn.execute(f"attach {lit(str(head))} as {HEAD} (read_only)")
        try:
            fmt = conn.execute(f"select max(format) from {HEAD}.meta").fetchone()[0]
            if fmt != FORMAT:
                raise SearchIndexMissing(f"{head}: a search index of an older format (`newsflow search --rebuild` "
                                         "rebuilds it)")
            names = [r[0] for r in conn.execute(f"select name from {HEAD}.segments order by pos").fetchall()]
            for i, name in enumerate(names):
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


def _stepwise(conn: duckdb.DuckDBPyConnection, segments: list[str], query: Query, filters: Filters
              ) -> list[tuple[Any, ...]]:
    """The plan of search_plan in steps over temporary tables; the rows of plan.results, best first."""
    conn.execute("create or replace temp table search_terms as select unnest($rows, recursive := true)",
                 {"rows": query.rows()})
    conn.execute(f"create or replace temp table search_tokens as with {plan.TOKENS.rstrip(',')} "
                 "select * from search_tokens")
    conn.execute("create or replace temp table search_groups as "
                 "select count(distinct g) as n from search_tokens where not neg")
    conn.execute(f"create or replace temp table search_qt as {plan.qt('$lang')}", {"lang": filters.lang})
    keys = [r[0] for r in conn.execute("select distinct h from search_qt").fetchall()]
    # Constants (integers of our own making): the zone maps of the postings, sorted by key, skip every row group
    # without one of the keys.
    consts = ", ".join(f"{int(k)}::ubigint" for k in keys) or "null"
    post = plan.union(segments, "h, article_id, tf", "postings", f"x.h in ({consts})")
    conn.execute(f"create or replace temp table search_post as {post}")
    conn.execute(f"create or replace temp table search_df as {plan.DF}")
    if filters.ids is not None:  # after the frequencies: they count every live article
        conn.register("search_only_ids", pa.table({"article_id": pa.array(filters.ids, pa.int64())}))
        conn.execute("delete from search_post where article_id not in (select article_id from search_only_ids)")
    conn.execute(f"create or replace temp table search_th as {plan.TH}")
    # Ranked as if every phrase matched (a phrase does not change a score); checked below, best first.
    conn.execute("create or replace temp table search_tv as select seg, article_id, idx, g, neg from search_th "
                 "where not (phrase and neg)")
    conn.execute(f"create or replace temp table search_cand as {plan.CAND}")
    conn.execute(f"create or replace temp table search_score as {plan.SCORE.format(lens=_lens(segments))}")
    where, params = _where(filters)
    kept = "search_score"
    if where != "true" or filters.lang:  # a filter on the articles' metadata: over every candidate
        conn.execute(f"""create or replace temp table search_kept as select segment as seg, article_id, score
            from ({plan.results(segments, 'search_score', '$lang')}) r where {where}""", params)
        kept = "search_kept"
    conn.execute(f"create or replace temp table search_ranked as select seg, article_id, score, "
                 f"row_number() over (order by score desc, article_id) as rank from {kept}")
    phrases = conn.execute("select count(*) from search_th where phrase").fetchone()[0]
    if phrases:
        top = _checked(conn, segments, filters.limit)
    else:
        top = conn.execute("select seg, article_id, score from search_ranked where rank <= ? order by rank",
                           [filters.limit]).fetchall()
    return _final(conn, segments, top)


def _docs(seg: int, columns: str, ids: list[int]) -> str:
    """SQL: `columns` of the docs `ids` of segment `seg`, one equality per id (integers of the index's own): DuckDB
    pushes an equality into the scan and reads the text of the matching rows only, where an IN list is checked
    after reading every row's."""
    return " union all ".join(f"select {columns} from search_s{seg}.docs where article_id = {int(i)}"
                              for i in ids) or f"select {columns} from search_s{seg}.docs where false"


def _final(conn: duckdb.DuckDBPyConnection, segments: list[str], top: list[tuple[Any, ...]]
           ) -> list[tuple[Any, ...]]:
    """The result rows (article_id, score, title, url, feed, date, language, copies, tags, segment) of `top`
    (seg, article_id, score), in its order."""
    if not top:
        return []
    conn.register("search_top", pa.table({"seg": pa.array([r[0] for r in top], pa.int32()),
                                          "article_id": pa.array([r[1] for r in top], pa.int64()),
                                          "score": pa.array([r[2] for r in top], pa.float64()),
                                          "rank": pa.array(range(len(top)), pa.int64())}))
    meta = " union all ".join(
        _docs(i, f"{i} as seg, article_id, url, title, feed, language, date", [r[1] for r in top if r[0] == i])
        for i in sorted({r[0] for r in top}))
    return conn.execute(f"""
        select t.article_id, t.score, a.title, a.url, a.feed, a.date, a.language, coalesce(c.copies, 0), f.tags,
               t.seg
        from search_top t join ({meta}) a using (seg, article_id)
        left join {HEAD}.copies c on c.article_id = t.article_id
        left join {HEAD}.feeds f on f.feed = a.feed
        order by t.rank""").fetchall()


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


def _where(filters: Filters) -> tuple[str, dict[str, Any]]:
    where, params = ["true"], {"lang": filters.lang}
    if filters.since:
        where.append("date >= $since")
        params["since"] = filters.since
    if filters.until:
        where.append("date < $until")
        params["until"] = filters.until + timedelta(days=1)
    if filters.feeds:
        where.append("feed in (select unnest($feeds))")
        params["feeds"] = list(filters.feeds)
    if filters.tags:
        where.append("list_has_any(tags, $tags)")
        params["tags"] = list(filters.tags)
    return " and ".join(where), params


def _lens(segments: list[str]) -> str:
    """(seg, article_id, len) of the candidates only (a semi-join per segment)."""
    return " union all ".join(
        f"select {i} as seg, article_id, len from search_s{i}.docs "
        f"where article_id in (select article_id from search_cand where seg = {i})" for i in range(len(segments))
    ) or "select null::integer as seg, null::bigint as article_id, null::integer as len where false"


def _checked(conn: duckdb.DuckDBPyConnection, segments: list[str], limit: int) -> list[tuple[Any, ...]]:
    """The first `limit` of search_ranked (seg, article_id, score) whose phrases hold (and whose excluded phrases
    do not), checked on their text a batch at a time, best first."""
    out: list[tuple[Any, ...]] = []
    total = conn.execute("select count(*) from search_ranked").fetchone()[0]
    size = max(_BATCH, limit)
    for start in range(0, total, size):
        batch = conn.execute("select seg, article_id, score from search_ranked where rank > ? and rank <= ? "
                             "order by rank", [start, start + size]).fetchall()
        ok: set[tuple[int, int]] = set()
        for i in sorted({r[0] for r in batch}):
            ids = [r[1] for r in batch if r[0] == i]
            rows = conn.execute(f"""
                with th as (select * from search_th where seg = {i} and article_id in (select unnest($ids))),
                d as ({_docs(i, 'article_id, title_text, text', ids)}),
                tv as (select th.article_id, th.g, th.neg from th join d using (article_id)
                       where not th.phrase or contains({plan.norm_text('d')}, {plan.norm_phrase('th.raw')}))
                select article_id from tv where not neg group by article_id
                having count(distinct g) = (select n from search_groups)
                except select article_id from tv where neg""", {"ids": ids}).fetchall()
            ok |= {(i, r[0]) for r in rows}
        out += [r for r in batch if (r[0], r[1]) in ok]
        if len(out) >= limit:
            return out[:limit]
    return out


def search(settings: WarehouseSettings, query: Query, filters: Filters) -> list[Hit]:
    """The best `filters.limit` matches of `query`, best first, each with a snippet."""
    with duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                            "autoload_known_extensions": False}) as conn:
        load_fts(conn)
        segments = attach(conn, settings)
        rows = _stepwise(conn, segments, query, filters)
        texts = _texts(conn, rows)
        stems = _stems(conn, query, texts.values(), filters.lang)
    return [Hit(r[0], float(r[1]), r[2] or "", r[3], r[4], r[5], r[6], int(r[7]),
                snippet(texts.get((r[9], r[0]), ""), stems)) for r in rows]


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


def _texts(conn: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> dict[tuple[int, int], str]:
    out: dict[tuple[int, int], str] = {}
    for seg in sorted({r[9] for r in rows}):
        ids = [r[0] for r in rows if r[9] == seg]
        for article_id, body in conn.execute(_docs(seg, "article_id, text", ids)).fetchall():
            out[(seg, article_id)] = body
    return out


_TOKEN = re.compile(r"[^\W_]+")


@lru_cache(maxsize=65536)
def fold(word: str) -> str:
    """A word as the index stores it before stemming: lower case, accents stripped."""
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
