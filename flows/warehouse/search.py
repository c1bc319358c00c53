"""Searching the full-text index (flows/warehouse/search_index.py) from the CLI, SQL and Python. No Prefect here.

Everything goes through one table macro, `search_articles(query, lang := NULL)`, created in a connection where the
segments are attached read-only as `search_base` and `search_delta` (`install`); `newsflow search` validates the
query with flows/core/searchquery.py first, then calls the macro and marks a snippet per result.

The macro's BM25 is written out here over the tables `pragma create_fts_index` builds (dict, terms, docs, stats),
with k1 = 1.2 and b = 0.75 as the extension's `match_bm25`: that macro refers to its tables without a catalog, so it
cannot run on an attached file, and it scores one document per call. Each index keeps its own statistics, so
scores from two indexes (two languages, or base and delta) are close but not strictly comparable.
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
from flows.warehouse.search_index import IGNORE, INDEXES, delta_path, index_name, load_fts

BASE, DELTA = "search_base", "search_delta"
K1, B = 1.2, 0.75
_SNIPPET_WORDS = 30


class SearchIndexMissing(WarehouseMissing):
    """No search index beside the warehouse yet."""


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def attach(conn: duckdb.DuckDBPyConnection, settings: WarehouseSettings) -> list[str]:
    """Attach the segment files read-only as search_base and search_delta; the names attached."""
    base = settings.search_path
    if not base.exists():
        raise SearchIndexMissing(f"{base}: no search index yet (`newsflow search --rebuild` builds it; "
                                 "each ingest that loads articles refreshes it)")
    names = [BASE]
    conn.execute(f"attach {_lit(str(base))} as {BASE} (read_only)")
    if delta_path(settings).exists():
        conn.execute(f"attach {_lit(str(delta_path(settings)))} as {DELTA} (read_only)")
        names.append(DELTA)
    return names


def install(conn: duckdb.DuckDBPyConnection, settings: WarehouseSettings) -> list[str]:
    """Make `search_articles(query, lang := NULL)` available in `conn`: load fts, attach the segments, create the
    macros (temporary: nothing is written to the connection's database). Returns the segments attached."""
    load_fts(conn)
    segments = attach(conn, settings)
    for statement in macro_sql(segments):
        conn.execute(statement)
    return segments


def script(settings: WarehouseSettings, fts: Path | None = None) -> str:
    """The SQL a DuckDB CLI or another program runs to get the macro: load fts, attach, create the macros."""
    from flows.warehouse.lake import extension_file

    lines = ["-- newsflow full-text search: attach the index beside the warehouse and define search_articles().",
             f"-- The fts extension of DuckDB {duckdb.__version__}, from its PyPI wheel; a DuckDB CLI of another "
             "version: replace the load with `install fts; load fts;`.",
             f"load {_lit(str(fts or extension_file('fts')))};",
             f"attach if not exists {_lit(str(settings.search_path))} as {BASE} (read_only);",
             f"attach if not exists {_lit(str(delta_path(settings)))} as {DELTA} (read_only);"]
    return "\n".join(lines + [s + ";" for s in macro_sql([BASE, DELTA])]) + "\n"


# The query text -> search_terms (t, g, neg, quoted, raw): the syntax of flows/core/searchquery.py, read
# leniently (the macro cannot raise a parse error; `newsflow search` validates with that parser first).
_TERMS = r"""
search_items as materialized (
    select unnest(items) as w, unnest(range(1, len(items) + 1)) as i
    from (select regexp_extract_all(coalesce(q, ''), '-?"[^"]*"|[^\s"]+') as items)),
search_flags as materialized (
    select i, w, w = 'OR' as is_or, coalesce(lag(w = 'OR') over (order by i), false) as after_or,
           starts_with(w, '-') and length(w) > 1 as neg
    from search_items),
search_terms as materialized (
    select i as t, sum(case when after_or and not neg then 0 else 1 end) over (order by i) as g, neg,
           starts_with(ltrim(w, '-'), '"') as quoted, trim(case when neg then w[2:] else w end, '"') as raw
    from search_flags where not is_or),"""
# search_terms -> search_tokens (t, g, neg, raw, tok, phrase), split as the index splits its text.
_TOKENS = f"""
search_words as materialized (
    select t, g, neg, quoted, raw,
           unnest(string_split(trim(regexp_replace(lower(strip_accents(raw)), '{IGNORE}', ' ', 'g')), ' ')) as tok
    from search_terms),
search_tokens as materialized (
    select t, g, neg, raw, tok, quoted or count(*) over (partition by t) > 1 as phrase
    from search_words where tok <> ''),
search_groups as materialized (select count(distinct g) as n from search_tokens where not neg),"""

_NOT_WORD = IGNORE.removesuffix("+")
_LOW = "lower(split_part(coalesce(lang, ''), '-', 1))"
_KEYS = ", ".join(f"'{k}'" for k in INDEXES if k != "other")
_LANG_INDEX = f"(case when {_LOW} in ({_KEYS}) then {_LOW} else 'other' end)"


def _bm25(seg: str, idx: str, stemmer: str, where: str = "true") -> str:
    """(seg, idx, article_id, score) of the documents of one index that match every positive group of the query
    (search_tokens, search_groups) and no negative term; phrases are checked on the normalised text."""
    fts = f"{seg}.fts_main_docs_{idx}"
    return f"""
    select '{seg}' as seg, '{idx}' as idx, fd.name as article_id, sc.score
    from (
        with st as materialized (select t, g, neg, phrase, raw, stem(tok, '{stemmer}') as stok from search_tokens),
        nt as materialized (select t, count(distinct stok) as n from st group by t),
        ids as materialized (select st.*, d.termid, d.df from st join {fts}.dict d on d.term = st.stok),
        post as materialized (select docid, termid, count(*) as tf from {fts}.terms
                              where termid in (select termid from ids) group by docid, termid),
        tp as materialized (select p.docid, ids.t, any_value(ids.g) as g, any_value(ids.neg) as neg,
                                   any_value(ids.phrase) as phrase, any_value(ids.raw) as raw,
                                   count(distinct ids.stok) as c
                            from post p join ids using (termid) group by p.docid, ids.t),
        th as materialized (select tp.* from tp join nt using (t) where tp.c = nt.n),
        tv as materialized (select docid, g, neg from th where not phrase
                            union all
                            select th.docid, th.g, th.neg from th join {fts}.docs fd using (docid)
                                 join {seg}.docs_{idx} x on x.article_id = fd.name
                            where th.phrase and regexp_matches(lower(strip_accents(x.title || ' ' || x.text)),
                                                               search_phrase(th.raw))),
        cand as materialized (select docid from tv where not neg group by docid
                              having count(distinct g) = (select n from search_groups)
                              except select docid from tv where neg),
        qt as materialized (select distinct termid, df from ids where not neg)
        select p.docid, sum(log(((s.num_docs - qt.df + 0.5) / (qt.df + 0.5)) + 1) * p.tf * ({K1} + 1)
                            / (p.tf + {K1} * (1 - {B} + {B} * fd.len / s.avgdl))) as score
        from post p join cand using (docid) join qt using (termid) join {fts}.docs fd using (docid),
             {fts}.stats s
        group by p.docid
    ) sc join {fts}.docs fd using (docid)
    where {where}"""


def _live(segments: list[str]) -> str:
    """SQL: whether the attached delta goes with the attached base (else readers use the base alone)."""
    return f"(select base_gen from {DELTA}.meta) = (select gen from {BASE}.meta)" if DELTA in segments else "false"


def _results(segments: list[str], hits: str, lang: str) -> str:
    """SQL of the results over `hits` (seg, idx, article_id, score): the base's articles the delta replaces or
    hides left out, with metadata, copies and feed tags from the segment that is current; `lang` a SQL value."""
    delta = DELTA in segments
    side = " union all ".join(f"select '{seg}' as seg, * from {seg}.articles" for seg in segments)

    def current(table: str) -> str:  # the delta's copy of a table when it goes with this base, else the base's
        if not delta:
            return f"select * from {BASE}.{table}"
        return (f"select * from {DELTA}.{table} where {_live(segments)} union all "
                f"select * from {BASE}.{table} where not {_live(segments)}")

    gone = f"select article_id from {DELTA}.gone where {_live(segments)}" if delta else \
        "select null::bigint as article_id where false"
    return f"""
        select h.article_id, h.score, a.title, a.url, a.feed, a.date, a.language,
               coalesce(c.copies, 0) as copies, f.tags, h.seg as segment
        from ({hits}) h join ({side}) a on a.seg = h.seg and a.article_id = h.article_id
        left join ({current('copies')}) c on c.article_id = h.article_id
        left join ({current('feeds')}) f on f.feed = a.feed
        where not (h.seg = '{BASE}' and h.article_id in ({gone}))
          and (h.seg = '{BASE}' or {_live(segments)})
          and ({lang} is null or lower(coalesce(a.language, a.idx)) = lower({lang})
               or lower(split_part(coalesce(a.language, a.idx), '-', 1)) = lower({lang}))"""


def macro_sql(segments: list[str]) -> list[str]:
    """The statements creating `search_phrase` and `search_articles(q, lang := NULL)` over the attached segments."""
    hits = " union all ".join(_bm25(seg, idx, stem, f"(lang is null or {_LANG_INDEX} = '{idx}')")
                              for seg in segments for idx, stem in INDEXES.items())
    return [
        # A phrase as a regular expression over the lower-cased, accent-stripped text: its words, in order, with
        # only non-word characters between them (one search, where normalising every candidate text took longer).
        f"create or replace temp macro search_phrase(s) as '(^|{_NOT_WORD})' || array_to_string(string_split("
        f"trim(regexp_replace(lower(strip_accents(coalesce(s, ''))), '{IGNORE}', ' ', 'g')), ' '), '{IGNORE}') "
        f"|| '($|{_NOT_WORD})'",
        f"""create or replace temp macro search_articles(q, lang := null) as table
        with {_TERMS}{_TOKENS}
        hits as ({hits})
        {_results(segments, "select * from hits", "lang")}
        order by h.score desc, h.article_id""",
    ]


def _stepwise(conn: duckdb.DuckDBPyConnection, segments: list[str], query: Query, lang: str | None) -> str:
    """For `newsflow search`: the parsed query into temporary tables and one small query per index into
    `search_hits` (a plan of every index at once takes DuckDB most of a second); returns the results' SQL."""
    conn.execute("create or replace temp table search_terms as "
                 "select unnest($rows, recursive := true)", {"rows": query.rows()})
    conn.execute(f"create or replace temp table search_tokens as with {_TOKENS.rstrip(',')} "
                 "select * from search_tokens")
    conn.execute("create or replace temp table search_groups as "
                 "select count(distinct g) as n from search_tokens where not neg")
    conn.execute("create or replace temp table search_hits "
                 "(seg varchar, idx varchar, article_id bigint, score double)")
    wanted = [index_name(lang)] if lang else list(INDEXES)
    for seg in segments:
        for idx in wanted:
            conn.execute(f"insert into search_hits {_bm25(seg, idx, INDEXES[idx])}")
    return _results(segments, "select * from search_hits", "$lang")


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


def search(settings: WarehouseSettings, query: Query, filters: Filters) -> list[Hit]:
    """The best `filters.limit` matches of `query`, best first, each with a snippet."""
    with duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                            "autoload_known_extensions": False}) as conn:
        segments = install(conn, settings)
        where, params = ["true"], {"lang": filters.lang, "limit": filters.limit}
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
        if filters.ids is not None:
            conn.register("search_only_ids", pa.table({"article_id": pa.array(filters.ids, pa.int64())}))
            where.append("article_id in (select article_id from search_only_ids)")
        results = _stepwise(conn, segments, query, filters.lang)
        rows = conn.execute(
            f"select article_id, score, title, url, feed, date, language, copies, segment "
            f"from ({results}) where {' and '.join(where)} order by score desc, article_id limit $limit",
            params).fetchall()
        texts = _texts(conn, segments, rows)
        stems = _stems(conn, query, texts.values(), filters.lang)
    return [Hit(r[0], float(r[1]), r[2] or "", r[3], r[4], r[5], r[6], int(r[7]),
                snippet(texts.get((r[8], r[0]), ""), stems)) for r in rows]


def indexed(settings: WarehouseSettings, ids: list[int]) -> set[int]:
    """Which of `ids` the index holds now: the base's articles the delta does not hide, and the delta's. Raises
    SearchIndexMissing without an index, duckdb.Error for an unreadable one."""
    with duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                            "autoload_known_extensions": False}) as conn:
        load_fts(conn)
        segments = attach(conn, settings)
        conn.register("search_asked", pa.table({"article_id": pa.array(ids, pa.int64())}))
        held = f"select article_id from {BASE}.articles"
        if DELTA in segments:
            held = (f"({held} where not ({_live(segments)} and article_id in (select article_id from {DELTA}.gone)))"
                    f" union all select article_id from {DELTA}.articles where {_live(segments)}")
        rows = conn.execute(f"select distinct article_id from ({held}) "
                            "where article_id in (select article_id from search_asked)").fetchall()
    return {r[0] for r in rows}


def _texts(conn: duckdb.DuckDBPyConnection, segments: list[str], rows: list[tuple[Any, ...]]
           ) -> dict[tuple[str, int], str]:
    out: dict[tuple[str, int], str] = {}
    for seg in segments:
        ids = [r[0] for r in rows if r[8] == seg]
        if not ids:
            continue
        union = " union all ".join(f"select article_id, text from {seg}.docs_{idx}" for idx in INDEXES)
        for article_id, body in conn.execute(f"select * from ({union}) where article_id in (select unnest(?))",
                                             [ids]).fetchall():
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
    twords = sorted({fold(w) for body in texts for w in _TOKEN.findall(body)})
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
