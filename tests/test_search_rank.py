"""`newsflow search` scores with numpy over the segments' postings files (flows/warehouse/search_rank.py): on a
generated corpus of several segments with tombstones, any query (words, OR, exclusions, phrases) with any filter
(language, dates, feeds, tags) gives exactly the ranking of the SQL plan (the `search_articles` macro, which scores
from the segments' DuckDB postings); an index of format 3 gets its postings files from a refresh, not a rebuild;
and segments written before packing (search_segments.PACKED_STORAGE) are read as they are and packed by a merge.

Covers: flows.warehouse.search_rank, flows.warehouse.search_postings, flows.warehouse.search
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_search import _doc, _load

from flows.core.records import Document
from flows.core.searchquery import SearchSyntaxError, parse
from flows.core.settings import Settings, load_settings
from flows.warehouse import database, search, search_index, search_postings, search_rank, search_segments, writer
from flows.warehouse.search_postings import open_postings, post_file

# A small vocabulary drawn with a power law: common words in most articles (long candidate lists, ties), rare ones
# in a few; two languages with a stemmer and one without.
_VOCAB = ["harbour", "ferry", "strike", "pay", "council", "report", "minister", "coal", "levy", "apple", "harvest",
          "spring", "prime", "running", "runs", "élection", "scrutins", "grève", "port", "wahl", "the", "of"]
_FEEDS = ["harbour", "valley", "hill"]


def _corpus_doc(n: int, rng: random.Random) -> Document:
    lang = rng.choice(["en", "en", "fr", "de", "en-GB", None])  # None: the default language's group
    words = [_VOCAB[min(int(rng.paretovariate(0.8)) - 1, len(_VOCAB) - 1)] for _ in range(rng.randint(2, 30))]
    doc = _doc(n % 25, "en", f"story {n}", " ".join(words) + f" item{n}.", url=f"https://outlet.example/r{n}",
               feed=rng.choice(_FEEDS))
    return dataclasses.replace(doc, language=lang)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """~120 articles loaded in 3 batches, each refreshed (tier of 2: merges), some deleted and some rewritten
    in between (tombstones in the segments that stay)."""
    s = load_settings(warehouse=tmp_path_factory.mktemp("rank") / "wh.duckdb")
    rng = random.Random(24)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(search_index, "TIER", 2)
        mp.setattr(search_index, "SMALL", 30)
        for step in range(3):
            _load(s, [_corpus_doc(step * 40 + i, rng) for i in range(40)], f"b-{step}")
            with database.connect(s.warehouse) as conn:
                ids = [r[0] for r in conn.execute("select article_id from articles order by 1").fetchall()]
                writer.delete_articles(conn, rng.sample(ids, 3))
                for i in rng.sample(ids, 4):
                    doc = _corpus_doc(1000 + i, rng)
                    conn.execute("update articles set text = ?, text_hash = ? where article_id = ?",
                                 [doc.text, doc.text_hash, i])
            assert search_index.refresh(s).mode in ("base", "delta")
    return s


_TERM = st.one_of(st.sampled_from(_VOCAB), st.sampled_from(_VOCAB).map(lambda w: w.upper()),
                  st.tuples(st.sampled_from(_VOCAB), st.sampled_from(_VOCAB)).map(lambda p: f'"{p[0]} {p[1]}"'))


@st.composite
def _queries(draw: st.DrawFn) -> str:
    parts = draw(st.lists(_TERM, min_size=1, max_size=4))
    out = [parts[0]]
    for p in parts[1:]:
        out.append(draw(st.sampled_from(["", "OR "])) + p)
    for neg in draw(st.lists(_TERM, max_size=2)):
        out.append("-" + neg)
    return " ".join(out)


_FILTERS = st.fixed_dictionaries({}, optional={
    "lang": st.sampled_from(["en", "fr", "de", "EN"]),
    "since": st.dates(date(2026, 11, 1), date(2026, 11, 26)),
    "until": st.dates(date(2026, 11, 1), date(2026, 11, 26)),
    "feeds": st.lists(st.sampled_from(_FEEDS), min_size=1, max_size=2).map(tuple),
    "tags": st.lists(st.sampled_from([f"t-{f}" for f in _FEEDS]), min_size=1, max_size=2).map(tuple),
    "ids": st.lists(st.integers(0, 300), max_size=60).map(tuple)})


@pytest.fixture(scope="module")
def macro(corpus: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as conn:
        search.install(conn, corpus.warehouse)
        yield conn


@pytest.fixture(scope="module")
def searcher(corpus: Settings) -> Iterator[search.Searcher]:
    with search.Searcher(corpus.warehouse) as s:
        yield s


def _reference(conn: duckdb.DuckDBPyConnection, text: str, f: dict[str, object]) -> list[tuple[int, float]]:
    """The SQL plan's ranking (the macro, every phrase candidate checked), filtered as search_plan.results does."""
    where, params = ["true"], {"q": text, "lang": f.get("lang")}
    if "since" in f:
        where.append("date >= $since")
        params["since"] = f["since"]
    if "until" in f:
        where.append("date < $until + interval 1 day")
        params["until"] = f["until"]
    if "feeds" in f:
        where.append("feed in (select unnest($feeds))")
        params["feeds"] = list(f["feeds"])  # type: ignore[arg-type]
    if "tags" in f:
        where.append("list_has_any(tags, $tags)")
        params["tags"] = list(f["tags"])  # type: ignore[arg-type]
    if "ids" in f:
        where.append("article_id in (select unnest($ids::bigint[]))")
        params["ids"] = list(f["ids"])  # type: ignore[arg-type]
    rows = conn.execute(f"select article_id, score from search_articles($q, lang := $lang) "
                        f"where {' and '.join(where)}", params).fetchall()
    return [(r[0], r[1]) for r in rows]


def _same(found: list[tuple[int, float]], ref: list[tuple[int, float]]) -> None:
    """The same articles, scores equal to 1e-9, in order of score then id (scores equal to 1e-9 are a tie: the
    last bit of a sum depends on its order, which SQL leaves open)."""
    assert sorted(a for a, _ in found) == sorted(a for a, _ in ref)
    scores = dict(ref)
    for a, sc in found:
        assert abs(sc - scores[a]) <= 1e-9 * max(1.0, abs(sc))
    key = [(-round(sc, 9), a) for a, sc in found]
    assert key == sorted(key)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_queries(), _FILTERS)
def test_numpy_ranking_is_the_sql_ranking(searcher: search.Searcher, macro: duckdb.DuckDBPyConnection, text: str,
                                          f: dict[str, object]) -> None:
    try:
        query = parse(text)
    except SearchSyntaxError:
        return
    if f.get("since") and f.get("until") and f["since"] > f["until"]:  # type: ignore[operator]
        f = {k: v for k, v in f.items() if k != "until"}
    hits = searcher.search(query, search.Filters(limit=1000, **f))  # type: ignore[arg-type]
    _same([(h.article_id, h.score) for h in hits], _reference(macro, text, f))


def test_the_best_k_are_the_first_k_of_the_whole_order(searcher: search.Searcher) -> None:
    """A limit cuts the whole ranking (ties at the cut by article id), with or without a phrase to check."""
    for text in ["the", "the of", '"the of"', "harbour OR the", "the -of"]:
        whole = searcher.search(parse(text), search.Filters(limit=1000))
        for k in (1, 3, 10, 50):
            assert [h.article_id for h in searcher.search(parse(text), search.Filters(limit=k))] \
                == [h.article_id for h in whole[:k]], (text, k)


def test_few_postings_are_scored_as_the_dense_arrays_score_them(searcher: search.Searcher,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A query whose words have few postings is scored over the articles they name (search_rank._universe): the
    same articles, the same scores to the last bit, as over the whole segment."""
    queries = [("item7", {}), ("item7 OR item55 OR levy", {}), ("levy -harbour", {}), ("levy item12", {}),
               ("apple OR item3", {"feeds": ("hill",)}), ("levy OR harvest", {"lang": "en"}),
               ("coal levy", {"ids": tuple(range(0, 300, 2))}), ("harbour", {})]
    sparse = []
    real = search_rank._universe

    def spy(*args: object) -> object:
        out = real(*args)  # type: ignore[arg-type]
        sparse.append(out is not None)
        return out

    monkeypatch.setattr(search_rank, "_universe", spy)
    got = [[(h.article_id, h.score) for h in searcher.search(parse(q), search.Filters(limit=1000, **f))]
           for q, f in queries]  # type: ignore[arg-type]
    assert any(sparse) and not all(sparse)  # both ways were taken
    monkeypatch.setattr(search_rank, "_universe", lambda *a: None)
    dense = [[(h.article_id, h.score) for h in searcher.search(parse(q), search.Filters(limit=1000, **f))]
             for q, f in queries]  # type: ignore[arg-type]
    assert got == dense
    assert any(got)


def test_the_postings_file_holds_the_segments_postings(corpus: Settings) -> None:
    folder = search_index.segments_dir(corpus.warehouse)
    for seg in folder.glob("*.duckdb"):
        post = open_postings(post_file(folder, seg.stem))
        with duckdb.connect(str(seg), read_only=True) as conn:
            rows = conn.execute("select h, article_id, tf from postings order by h, article_id").fetchall()
            assert post.ids.tolist() == [r[0] for r in conn.execute("select article_id from docs order by 1")
                                         .fetchall()]
        got = [(int(k), int(post.ids[d]), int(tf)) for i, k in enumerate(post.keys)
               for d, tf in zip(*post.postings(int(k)), strict=True)]
        assert got == rows and len(post.keys) == len({r[0] for r in rows})


def test_an_index_of_format_3_gets_its_postings_files_from_a_refresh(tmp_path_factory: pytest.TempPathFactory
                                                                     ) -> None:
    s = load_settings(warehouse=tmp_path_factory.mktemp("upgrade") / "wh.duckdb")
    rng = random.Random(3)
    _load(s, [_corpus_doc(i, rng) for i in range(30)], "b-1")
    first = search_index.refresh(s)
    before = [(h.article_id, h.score) for h in search.search(s.warehouse, parse("harbour"), search.Filters())]
    folder = search_index.segments_dir(s.warehouse)
    for p in folder.glob("*.post"):
        p.unlink()
    with duckdb.connect(str(s.warehouse.search_path)) as head:
        head.execute("update meta set format = 3")
    with pytest.raises(search.SearchIndexMissing, match="older format"):
        search.search(s.warehouse, parse("harbour"), search.Filters())
    done = search_index.refresh(s)
    assert (done.mode, done.indexed, done.articles) == ("delta", 0, first.articles)
    assert len(list(folder.glob("*.post"))) == len(list(folder.glob("*.duckdb"))) == 1
    assert [(h.article_id, h.score) for h in search.search(s.warehouse, parse("harbour"), search.Filters())] \
        == before


def _unpack(folder: Path, name: str) -> None:
    """Rewrite a segment as newsflow wrote it before packing: DuckDB's default storage (texts stored plainly), a
    `postings` table by 64-bit id, a text file of plain texts and a postings file saying so."""
    seg, old = folder / f"{name}.duckdb", folder / f"{name}.old"
    with duckdb.connect(str(old)) as conn:
        conn.execute(f"attach '{seg}' as src (read_only)")
        conn.execute(f"create table docs as select {search_segments.DOC_COLUMNS} from src.docs order by article_id")
        conn.execute("create table postings as select h, article_id, tf from src.postings order by h, article_id")
        conn.execute("create table stats as select * from src.stats; create table meta as select * from src.meta")
        conn.execute("detach src")
        search_segments._write_texts(conn, folder / f"{name}.text", None)
        search_postings.write(conn, folder / f"{name}.post", list(search_segments.INDEXES))
        conn.execute("checkpoint")
    old.replace(seg)


def _both(s: Settings, query: str) -> tuple[list[tuple[int, float, str]], list[tuple[int, float]]]:
    """The ranking of `newsflow search` (with each result's snippet, from its text as read back) and of the SQL
    macro."""
    hits = search.search(s.warehouse, parse(query), search.Filters(limit=200))
    with duckdb.connect() as conn:
        search.install(conn, s.warehouse)
        sql = conn.execute("select article_id, score from search_articles(?) order by score desc, article_id",
                           [query]).fetchall()
    return [(h.article_id, round(h.score, 9), h.snippet) for h in hits], [(a, round(x, 9)) for a, x in sql]


def test_segments_written_before_packing_are_read_then_packed_by_a_merge(tmp_path_factory: pytest.TempPathFactory
                                                                       ) -> None:
    s = load_settings(warehouse=tmp_path_factory.mktemp("packing") / "wh.duckdb")
    rng = random.Random(7)
    folder = search_index.segments_dir(s.warehouse)
    queries = ["harbour", "ferry OR coal -strike", '"harbour ferry"', '"strike pay"', "élection"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(search_index, "TIER", 3)
        mp.setattr(search_index, "SMALL", 30)
        for step in range(2):
            _load(s, [_corpus_doc(step * 25 + i, rng) for i in range(25)], f"b-{step}")
            search_index.refresh(s)
        packed = {q: _both(s, q) for q in queries}
        names = sorted(p.stem for p in folder.glob("*.duckdb"))
        assert len(names) == 2 and all(open_postings(post_file(folder, n)).text_codec == "zstd" for n in names)
        sizes = {n: (folder / f"{n}.text").stat().st_size for n in names}
        for n in names:
            _unpack(folder, n)
            assert open_postings(post_file(folder, n)).text_codec is None
            assert (folder / f"{n}.text").stat().st_size > sizes[n]  # plain texts: larger than packed ones
        # Read as they are: the same results, texts and scores, from numpy and from SQL.
        assert {q: _both(s, q) for q in queries} == packed
        # A third segment merges the tier: the merged segment is packed and ranks the same.
        _load(s, [_corpus_doc(100 + i, rng) for i in range(25)], "b-2")
        assert search_index.refresh(s).merged
    (merged,) = [p.stem for p in folder.glob("*.duckdb")]
    assert open_postings(post_file(folder, merged)).text_codec == "zstd"
    with duckdb.connect(str(folder / f"{merged}.duckdb"), read_only=True) as conn:
        assert conn.execute("select count(*) from post").fetchone()[0] \
            == conn.execute("select count(*) from postings").fetchone()[0] > 0
    for q in queries:  # the first two loads' articles, with the same texts, and both rankings agree
        hits, sql = _both(s, q)
        assert [r[:2] for r in hits] == sql
        snippets = {a: snip for a, _, snip in hits}
        assert all(snippets[a] == snip for a, _, snip in packed[q][0])
    assert all(packed[q][0] for q in queries)
