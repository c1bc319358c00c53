"""The SQL of a search over the attached index (flows/warehouse/search.py): term-driven BM25. No Prefect here.

A query reads only the postings of its own words: each segment's `postings` is sorted by the word's key, so the
filter on the keys of the query's stemmed words reads a few row groups whatever the size of the index. From them:

- document frequency per (language group, word): the live postings counted over every segment, and the number of
  live articles and their total length per group from the head's `stats`: the BM25 statistics of one index of
  all live articles, so a score is the same whatever the segments (a rebuild gives the same scores and order);
- a term matches an article that has all its words (a phrase: checked on the text, in order); a group of OR-ed
  terms matches when one of its terms does; an article matches when every positive group does and no excluded
  term does;
- BM25 (k1 = 1.2, b = 0.75, the fts extension's `match_bm25` formula) summed over the query's positive words.

Relations the pieces expect: search_tokens (t, g, neg, raw, tok, phrase) and search_groups (n) of the query
(_TERMS/_TOKENS below, or temporary tables); search_qt (t, g, neg, phrase, raw, idx, term, h): the tokens stemmed
per language group, h their key; search_post (seg, h, article_id, tf): their live postings.
"""

from __future__ import annotations

from flows.warehouse.search_segments import INDEXES, SPLIT, lit, term_key

HEAD = "search_head"
K1, B = 1.2, 0.75
_LOW = "lower(split_part(coalesce(lang, ''), '-', 1))"
_KEYS = ", ".join(f"'{k}'" for k in INDEXES if k != "other")
LANG_INDEX = f"(case when {_LOW} in ({_KEYS}) then {_LOW} else 'other' end)"

# The query text -> search_terms (t, g, neg, quoted, raw): the syntax of flows/core/searchquery.py, read
# leniently (the macro cannot raise a parse error; `newsflow search` validates with that parser first).
TERMS = r"""
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
TOKENS = f"""
search_words as materialized (
    select t, g, neg, quoted, raw,
           strip_accents(unnest(regexp_split_to_array(lower(raw), '{SPLIT}'))) as tok
    from search_terms),
search_tokens as materialized (
    select t, g, neg, raw, tok, quoted or count(*) over (partition by t) > 1 as phrase
    from search_words where tok <> ''),
search_groups as materialized (select count(distinct g) as n from search_tokens where not neg),"""

def qt(lang: str) -> str:
    """search_tokens -> search_qt: stemmed per language group, with the key of the postings (`lang`: a SQL value,
    NULL for every group)."""
    groups = "(values " + ", ".join(f"({lit(k)}, {lit(v)})" for k, v in INDEXES.items()) + ") i(idx, stemmer)"
    return f"""
    select *, {term_key('idx', 'term')} as h from (
        select st.t, st.g, st.neg, st.phrase, st.raw, i.idx, stem(st.tok, i.stemmer) as term
        from search_tokens st, {groups}
        where {lang} is null or {LANG_INDEX.replace('lang', lang)} = i.idx)"""


def norm_text(alias: str) -> str:
    """SQL: the title and text of docs row `alias` as its words (accents stripped) between single spaces."""
    return (f"(' ' || strip_accents(regexp_replace(lower({alias}.title_text || ' ' || {alias}.text), {lit(SPLIT)}, "
            f"' ', 'g')) || ' ')")


def norm_phrase(raw: str) -> str:
    """SQL: a phrase as its words between single spaces, found in norm_text when the words stand in this order
    (a constant search string per row, where a regular expression per row would be compiled per row)."""
    return (f"(' ' || array_to_string(list_filter(list_transform(regexp_split_to_array(lower({raw}), "
            f"{lit(SPLIT)}), w -> strip_accents(w)), w -> w <> ''), ' ') || ' ')")


def dead(name: str, alias: str = "x") -> str:
    """SQL: the article of row `alias` of segment `name` is tombstoned."""
    return (f"exists (select 1 from {HEAD}.tombstones tb where tb.seg = {lit(name)} "
            f"and tb.article_id = {alias}.article_id)")


def union(segments: list[str], select: str, table: str, where: str = "true") -> str:
    """`select <pos> as seg, <select> from <segment>.<table> x where <where> and not tombstoned`, for each."""
    return " union all ".join(
        f"select {i} as seg, {select} from search_s{i}.{table} x where ({where}) and not {dead(name)}"
        for i, name in enumerate(segments)) or f"select null::integer as seg, {select} from (select 1) x where false"


def docs(segments: list[str], columns: str = "*") -> str:
    """The live docs of every segment, with `seg`."""
    return union(segments, columns, "docs")


# The terms matched per article (search_th: seg, article_id, idx, t, g, neg, phrase, raw), from search_post.
# A term's rows of search_qt are made distinct first (a word twice in a phrase is one key): a posting is one row
# per (segment, key, article), so a count of rows counts the term's distinct keys, without a count(distinct).
TH = """
    select tp.* exclude (c) from (
        select p.seg, p.article_id, q.idx, q.t, any_value(q.g) as g, any_value(q.neg) as neg,
               any_value(q.phrase) as phrase, any_value(q.raw) as raw, count(*) as c
        from search_post p join (select distinct idx, t, h, g, neg, phrase, raw from search_qt) q using (h)
        group by p.seg, p.article_id, q.idx, q.t) tp
    join (select idx, t, count(distinct h) as n from search_qt group by all) nt using (idx, t)
    where tp.c = nt.n"""

# The articles (seg, article_id, idx) meeting the query, from search_tv (seg, article_id, idx, g, neg): the terms
# found true.
CAND = """
    select seg, article_id, idx from search_tv where not neg group by all
    having count(distinct g) = (select n from search_groups)
    except select seg, article_id, idx from search_tv where neg"""

# BM25 of search_cand (seg, article_id, idx) over search_post; search_df (h, df); `lens` a relation of
# (seg, article_id, len). Each positive key's idf and its group's average length first (a few rows), so the
# postings meet one small table, not three; the same arithmetic in the same order as the fts formula.
SCORE = f"""
    select p.seg, p.article_id, c.idx,
           sum(w.idf * p.tf * ({K1} + 1) / (p.tf + {K1} * (1 - {B} + {B} * d.len / w.avg_len))) as score
    from search_post p join search_cand c using (seg, article_id)
    join (select q.idx, q.h, log(((s.n - df.df + 0.5) / (df.df + 0.5)) + 1) as idf, s.total_len / s.n as avg_len
          from (select distinct idx, h from search_qt where not neg) q join search_df df on df.h = q.h
          join {HEAD}.stats s on s.idx = q.idx) w on w.h = p.h and w.idx = c.idx
    join ({{lens}}) d using (seg, article_id)
    group by all"""

DF = "select h, count(*) as df from search_post group by all"


def macro(segments: list[str], gen: str | None = None) -> str:
    """`search_articles(q, lang := NULL)`: the whole search in one statement, every phrase checked."""
    post = union(segments, "h, article_id, tf", "postings", "x.h in (select h from search_qt)")
    fresh = "true" if gen is None else (
        f"(select case when gen = {lit(gen)} then true else error('the search index changed since this SQL was "
        f"printed: print it again (newsflow search --print-sql)') end from {HEAD}.meta)")
    return f"""create or replace temp macro search_articles(q, lang := null) as table
    with {TERMS}{TOKENS}
    search_qt as materialized ({qt('lang')}),
    search_post as materialized ({post}),
    search_df as materialized ({DF}),
    search_th as materialized ({TH}),
    search_tv as materialized (
        select seg, article_id, idx, g, neg from search_th where not phrase
        union all
        select th.seg, th.article_id, th.idx, th.g, th.neg from search_th th
        join ({docs(segments, 'article_id, title_text, text')}) d using (seg, article_id)
        where th.phrase and contains({norm_text('d')}, {norm_phrase('th.raw')})),
    search_cand as materialized ({CAND}),
    search_score as materialized ({SCORE.format(lens=docs(segments, 'article_id, len'))})
    {results(segments, 'search_score', 'lang')}
      and {fresh}
    order by h.score desc, h.article_id"""


def results(segments: list[str], scored: str, lang: str) -> str:
    """SQL of the results over `scored` (seg, article_id, idx, score) with metadata, copies and feed tags;
    `lang` a SQL value (NULL: every language)."""
    meta = docs(segments, "article_id, idx, url, title, feed, language, date")
    return f"""
    select h.article_id, h.score, a.title, a.url, a.feed, a.date, a.language,
           coalesce(c.copies, 0) as copies, f.tags, h.seg as segment
    from {scored} h join ({meta}) a using (seg, article_id)
    left join {HEAD}.copies c on c.article_id = h.article_id
    left join {HEAD}.feeds f on f.feed = a.feed
    where ({lang} is null or lower(coalesce(a.language, a.idx)) = lower({lang})
           or lower(split_part(coalesce(a.language, a.idx), '-', 1)) = lower({lang}))"""
