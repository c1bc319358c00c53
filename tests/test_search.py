"""Full-text search (issue 24): the query parser, the index in its side files, `newsflow search`, and the
`search_articles` macro in `newsflow sql`, on real DuckDB warehouses (and a DuckLake) loaded by the real loader.

Covers: flows.warehouse.search, flows.warehouse.search_index, flows.core.searchquery, flows.cli.search_command
Covers: flows.warehouse.search_segments, flows.warehouse.search_plan
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.cli import main
from flows.core.records import Document
from flows.core.searchquery import SearchSyntaxError, parse
from flows.core.sections import DedupSettings
from flows.core.settings import PROJECT_ROOT, Settings, load_settings
from flows.run.documents import signature_fields
from flows.warehouse import database, search, search_index, writer
from flows.warehouse.staging import Batch

DEDUP = DedupSettings()
FILLER = (" The council published its yearly report on Tuesday, and officials said more details would follow in "
          "the coming weeks after a review by independent experts.")
STORIES = [  # (language, title, text): each a few sentences, so BM25 has lengths to work with
    ("en", "Marathon season", "The veteran athlete runs along the harbour every morning before dawn."),
    ("en", "Carbon levy", "The prime minister announced a carbon levy on coal plants and gas imports."),
    ("en", "Tax reform", "Parliament debated a carbon levy, but the minister said prime time was over."),
    ("en", "Orchard harvest", "Apple growers expect a record harvest after a warm and wet spring."),
    ("fr", "Vote à Lyon", "Les habitants préparent l'élection municipale et les bureaux ouvrent à huit heures."),
    ("fr", "Réforme", "Le gouvernement présente une réforme des listes électorales avant les scrutins régionaux."),
    ("de", "Wahl in Bayern", "Die Landtagswahl findet im Herbst statt, sagte der Minister in München."),
]


def _doc(n: int, lang: str, title: str, text: str, *, url: str | None = None, feed: str = "harbour") -> Document:
    body = text + FILLER
    return Document(url=url or f"https://outlet.example/{n}", text=body, title=title, language=lang,
                    body_source="extracted", feed=feed, published_at=datetime(2026, 11, 1 + n, tzinfo=UTC),
                    **signature_fields(body, DEDUP))


def _load(s: Settings, docs: list[Document], batch_id: str) -> writer.LoadResult:
    batch = Batch(batch_id, "run-1")
    batch.add("docs", *docs)
    batch.add("feeds", *[{"feed": f, "url": f"http://{f}/", "configured_url": f"http://{f}/", "tags": [f"t-{f}"],
                          "updated_at": datetime(2026, 11, 1, tzinfo=UTC)} for f in {d.feed for d in docs if d.feed}])
    with database.connect(s.warehouse) as conn:
        database.migrate(conn)
        return writer.load_batch(conn, batch, DEDUP)


def _stories() -> list[Document]:
    docs = [_doc(n, *story) for n, story in enumerate(STORIES)]
    # An exact copy of the carbon story on another outlet: stored once, shown with its copy count.
    docs.append(_doc(1, *STORIES[1], url="https://copy.example/carbon", feed="valley"))
    return docs


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A warehouse with the stories, its index built (read by the tests, never written)."""
    s = load_settings(warehouse=tmp_path_factory.mktemp("search") / "wh.duckdb")
    docs = _stories()
    assert _load(s, docs[:-1], "b-1").new == len(STORIES)
    assert _load(s, docs[-1:], "b-2").exact == 1
    done = search_index.refresh(s)
    assert (done.mode, done.articles) == ("base", len(STORIES))
    return s


def _titles(s: Settings, text: str, **filters: object) -> list[str]:
    return [h.title for h in search.search(s.warehouse, parse(text), search.Filters(**filters))]


# ---------------------------------------------------------------- the query parser

def test_parser_groups_or_phrases_and_exclusions() -> None:
    q = parse('carbon "prime minister" -coal levy OR tax')
    assert [(t.text, t.group, t.negative, t.phrase) for t in q.terms] == [
        ("carbon", 0, False, False), ("prime minister", 1, False, True), ("coal", 2, True, False),
        ("levy", 3, False, False), ("tax", 3, False, False)]
    assert parse("covid-19").terms[0].phrase  # a bare word of several words is a phrase
    assert [t.text for t in parse("a & b").terms] == ["a", "b"]  # punctuation alone is ignored


@pytest.mark.parametrize("bad", ['"open', "", "   ", "-coal", '-"a b"', "OR tax", "tax OR", "a OR OR b",
                                 "a OR -b", 'ab"c d"', '""', "- &"])
def test_parser_refuses_malformed_queries(bad: str) -> None:
    with pytest.raises(SearchSyntaxError):
        parse(bad)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=30), st.lists(st.sampled_from(
    ["a", "b", " ", "-", '"', "OR", " OR ", '-"', "é", "\t", "&", "or", "covid-19"]), max_size=12).map("".join)))
def test_parser_raises_only_its_own_error(text: str) -> None:
    try:
        q = parse(text)
    except SearchSyntaxError as exc:
        assert "\n" not in str(exc)
    else:
        assert q.positive and all(t.words for t in q.terms)


# ---------------------------------------------------------------- matching

def test_english_stemming_running_finds_runs(filled: Settings) -> None:
    assert _titles(filled, "running athletes") == ["Marathon season"]


def test_french_stemming_and_accents(filled: Settings) -> None:
    assert _titles(filled, "élections") == ["Vote à Lyon"]  # élection, singular
    assert _titles(filled, "electoral", lang="fr") == ["Réforme"]  # électorales, no accent typed
    assert _titles(filled, "scrutin") == ["Réforme"]


def test_other_languages_are_not_stemmed(filled: Settings) -> None:
    assert _titles(filled, "landtagswahl") == ["Wahl in Bayern"]
    assert _titles(filled, "landtagswahlen") == []


def test_phrase_exclusion_and_or(filled: Settings) -> None:
    assert _titles(filled, "prime minister") == ["Tax reform", "Carbon levy"] or \
        sorted(_titles(filled, "prime minister")) == ["Carbon levy", "Tax reform"]
    assert _titles(filled, '"prime minister"') == ["Carbon levy"]  # both words, in this order, only here
    assert _titles(filled, "carbon levy -coal") == ["Tax reform"]
    assert sorted(_titles(filled, "apple OR landtagswahl")) == ["Orchard harvest", "Wahl in Bayern"]
    assert _titles(filled, "apple landtagswahl") == []  # AND by default


def test_copies_are_shown_once_with_their_count(filled: Settings) -> None:
    hits = search.search(filled.warehouse, parse("coal"), search.Filters())
    assert [(h.title, h.copies, h.url) for h in hits] == [("Carbon levy", 1, "https://outlet.example/1")]
    assert "«coal»" in hits[0].snippet


def test_filters(filled: Settings) -> None:
    assert _titles(filled, "minister", lang="de") == ["Wahl in Bayern"]
    assert _titles(filled, "harbour OR apple", since=datetime(2026, 11, 4).date()) == ["Orchard harvest"]
    assert _titles(filled, "harbour OR apple", until=datetime(2026, 11, 3).date()) == ["Marathon season"]
    # The last day there is: its day after is past Python's dates (an OverflowError before), not SQL's.
    assert _titles(filled, "harbour OR apple", until=date.max) == _titles(filled, "harbour OR apple",
                                                                          since=date.min)
    assert _titles(filled, "coal", feeds=("valley",)) == []
    assert _titles(filled, "coal", tags=("t-harbour",)) == ["Carbon levy"]


# ---------------------------------------------------------------- the index and its refresh

def test_delta_refresh_adds_new_articles_hides_deleted_ones_and_counts_new_copies(tmp_path: Path) -> None:
    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(s, [_doc(n, *story) for n, story in enumerate(STORIES[:4])], "b-1")
    assert search_index.refresh(s).mode == "base"
    later = [_doc(9, "en", "Ferry strike", "Ferry crews walked out over pay at the harbour."),
             _doc(3, *STORIES[3], url="https://copy.example/apple", feed="valley")]
    _load(s, later, "b-2")
    with database.connect(s.warehouse) as conn:
        writer.delete_articles(conn, [conn.execute("select article_id from articles where title = 'Carbon levy'"
                                                   ).fetchone()[0]])
    done = search_index.refresh(s)
    assert (done.mode, done.indexed, done.articles) == ("delta", 1, 4)
    assert _titles(s, "ferry") == ["Ferry strike"]
    assert _titles(s, "coal") == []
    assert [h.copies for h in search.search(s.warehouse, parse("apple"), search.Filters())] == [1]
    assert done.segments == 2 and done.merged == 0
    # Segments of one size tier are merged (their postings copied, the tombstoned article left out).
    _load(s, [_doc(10, "en", "Ferry talks", "Talks to end the ferry strike resumed on Monday.")], "b-3")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(search_index, "TIER", 3)
        done = search_index.refresh(s)
    assert (done.mode, done.indexed, done.merged, done.segments, done.articles) == ("delta", 1, 5, 1, 5)
    assert _titles(s, "ferry") == ["Ferry strike", "Ferry talks"] or \
        sorted(_titles(s, "ferry")) == ["Ferry strike", "Ferry talks"]
    assert _titles(s, "coal") == []
    assert _segment_files(s) == 1  # merged-away segments removed


def test_a_refresh_reads_what_loads_wrote_since_its_mark_and_compares_all_when_the_count_is_off(
        tmp_path: Path) -> None:
    """The default refresh reads only the rows of loads after the head's mark (issue 23: its cost follows the new
    articles, not the stored ones); a deletion outside a load breaks the count and it compares everything; a text
    changed by hand is seen by the full comparison the maintenance flow runs."""
    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(s, [_doc(n, *story) for n, story in enumerate(STORIES[:4])], "b-1")
    assert search_index.refresh(s).compared == "all"  # built from nothing
    _load(s, [_doc(9, "en", "Ferry strike", "Ferry crews walked out over pay at the harbour."),
              _doc(3, *STORIES[3], url="https://copy.example/apple", feed="valley")], "b-2")
    done = search_index.refresh(s)
    assert (done.compared, done.indexed, done.articles) == ("new", 1, 5)
    assert _titles(s, "ferry") == ["Ferry strike"]
    assert [h.copies for h in search.search(s.warehouse, parse("apple"), search.Filters())] == [1]
    nothing = search_index.refresh(s)
    assert (nothing.compared, nothing.indexed, nothing.articles) == ("new", 0, 5)
    assert [h.copies for h in search.search(s.warehouse, parse("apple"), search.Filters())] == [1]
    with database.connect(s.warehouse) as conn:
        conn.execute("update articles set text = 'Regatta results from the bay.', text_hash = 'f00d' "
                     "where title = 'Ferry strike'")
    assert search_index.refresh(s).compared == "new"
    assert _titles(s, "regatta") == []  # a change outside a load waits for the full comparison
    full = search_index.refresh(s, full=True)
    assert (full.compared, full.indexed, full.articles) == ("all", 1, 5)
    assert _titles(s, "regatta") == ["Ferry strike"] and _titles(s, "ferry") == ["Ferry strike"]
    with database.connect(s.warehouse) as conn:
        conn.execute("delete from articles where title = 'Carbon levy'")
    gone = search_index.refresh(s)
    assert (gone.compared, gone.articles) == ("all", 4)
    assert _titles(s, "coal") == []


def test_an_index_written_before_the_mark_compares_everything_once(tmp_path: Path) -> None:
    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(s, [_doc(n, *story) for n, story in enumerate(STORIES[:2])], "b-1")
    search_index.refresh(s)
    with duckdb.connect(str(s.warehouse.search_path)) as head:  # as the previous version wrote it
        head.execute("alter table meta drop column load_seq; alter table meta drop column stored")
    _load(s, [_doc(3, *STORIES[3])], "b-2")
    first = search_index.refresh(s)
    assert (first.compared, first.indexed, first.articles) == ("all", 1, 3)
    _load(s, [_doc(9, "en", "Ferry strike", "Ferry crews walked out over pay at the harbour.")], "b-3")
    assert search_index.refresh(s).compared == "new"
    assert _titles(s, "apple") == ["Orchard harvest"] and _titles(s, "ferry") == ["Ferry strike"]


def test_a_stored_article_a_later_load_records_as_a_copy_leaves_the_index(tmp_path: Path) -> None:
    """An original that a load after the mark records as a copy (as `reprocess` demotes one, in a load of its own
    number) is tombstoned by the refresh that reads only that load's rows; its copy counts move to the original."""
    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(s, [_doc(n, *story) for n, story in enumerate(STORIES[:4])], "b-1")
    search_index.refresh(s)
    with database.connect(s.warehouse) as conn, database.transaction(conn):
        seq = writer.next_load_seq(conn)
        keep, demoted = conn.execute("select article_id, url from articles where title in ('Carbon levy', "
                                     "'Tax reform') order by title").fetchall()
        conn.execute("insert into duplicates (url, feed, title, duplicate_of, method, criterion, similarity, "
                     "text_hash, seen_at, run_id, load_seq) values (?, 'harbour', 'Tax reform', ?, 'near', "
                     "'jaccard', 0.9, 'x', now(), 'run-2', ?)", [demoted[1], keep[0], seq])
    done = search_index.refresh(s)
    assert (done.compared, done.indexed, done.articles) == ("new", 0, 3)
    assert _titles(s, "parliament") == []
    assert [h.copies for h in search.search(s.warehouse, parse("coal"), search.Filters())] == [1]


def test_a_seed_stored_again_with_a_new_text_is_found_by_the_next_refresh(tmp_path: Path) -> None:
    """A changed seed file is deleted and stored again under its id in one load: the refresh that reads only that
    load's rows replaces its text in the index."""
    s = load_settings(warehouse=tmp_path / "wh.duckdb")

    def seed(text: str, file_hash: str) -> Document:
        body = text + FILLER
        return Document(url="seed:000_levy.txt", text=body, title="Levy", language="en", body_source="seed",
                        is_seed=True, seed_file="000_levy.txt", seed_file_hash=file_hash,
                        **signature_fields(body, DEDUP))

    _load(s, [seed("Lawmakers backed a levy on coal.", "a"), _doc(0, *STORIES[0])], "b-1")
    search_index.refresh(s)
    assert _titles(s, "coal") == ["Levy"]
    _load(s, [seed("Lawmakers rejected a tariff on steel imports.", "b")], "b-2")
    done = search_index.refresh(s)
    assert (done.compared, done.indexed, done.articles) == ("new", 1, 2)
    assert _titles(s, "steel") == ["Levy"] and _titles(s, "coal") == []


def _segment_files(s: Settings) -> int:
    """The segments in the index's folder, each with its text and postings files and nothing else."""
    files = sorted(search_index.segments_dir(s.warehouse).iterdir())
    stems = {f.stem for f in files}
    assert sorted(f.name for f in files) == sorted(f"{n}{x}" for n in stems for x in (".duckdb", ".text", ".post"))
    return len(stems)


_WORDS = ["harbour", "ferry", "strike", "pay", "council", "report", "minister", "coal", "levy", "apple", "harvest",
          "spring", "prime", "running", "runs", "élection", "scrutins", "municipale", "grève", "port"]
_QUERIES = ["harbour", "ferry strike", "pay OR levy", "minister -coal", '"prime minister"', "running", "élections",
            "grève port", "apple harvest spring", "council report OR coal"]
_OPS = st.lists(st.tuples(st.sampled_from(["load", "load", "delete", "rewrite"]), st.integers(1, 6),
                          st.integers(0, 10**6)), min_size=2, max_size=5)


def _random_doc(n: int, rng: random.Random) -> Document:
    lang = rng.choice(["en", "en", "fr", "de"])
    text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 25))) + f" item{n}."
    return _doc(n % 20, lang, f"story {n}", text, url=f"https://outlet.example/s{n}")


def _ranked(s: Settings, text: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    found = search.search(s.warehouse, parse(text), search.Filters(limit=50))
    hits = [(h.article_id, round(h.score, 9)) for h in found]
    with duckdb.connect() as conn:
        search.install(conn, s.warehouse)
        rows = conn.execute("select article_id, score from search_articles(?)", [text]).fetchall()
    return hits, [(r[0], round(r[1], 9)) for r in rows]


@settings(max_examples=4, deadline=None)
@given(_OPS)
def test_refreshes_and_merges_rank_as_a_rebuild_does(tmp_path_factory: pytest.TempPathFactory,
                                                    ops: list[tuple[str, int, int]]) -> None:
    """Any sequence of loads, deletions and new texts, refreshed (and merged: a tier of 2 segments) after each
    step (comparing only what loads wrote since, unless a text was changed by hand), gives the same ranked results
    and scores as an index rebuilt from the same warehouse."""
    root = tmp_path_factory.mktemp("prop")
    s = load_settings(warehouse=root / "wh.duckdb")
    serial = 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(search_index, "TIER", 2)
        mp.setattr(search_index, "SMALL", 1)
        for step, (op, count, seed) in enumerate(ops):
            rng = random.Random(seed)
            with database.connect(s.warehouse) as conn:
                database.migrate(conn)
                urls = [r[0] for r in conn.execute("select url from articles order by url").fetchall()]
            if op == "load" or not urls:
                _load(s, [_random_doc(serial + i, rng) for i in range(count)], f"b-{step}")
                serial += count
            elif op == "delete":
                with database.connect(s.warehouse) as conn:
                    gone = rng.sample(urls, min(count, len(urls)))
                    ids = conn.execute("select article_id from articles where url in (select unnest(?))", [gone])
                    writer.delete_articles(conn, [r[0] for r in ids.fetchall()])
            else:  # the same URLs stored again with another text
                for url in rng.sample(urls, min(count, len(urls))):
                    n = int(url.rsplit("s", 1)[1])
                    doc = _random_doc(n, rng)
                    with database.connect(s.warehouse) as conn:
                        conn.execute("update articles set text = ?, text_hash = ? where url = ?",
                                     [doc.text, doc.text_hash, url])
            # A text changed outside a load (here by hand) is found by comparing everything, as the maintenance
            # flow does daily; loads and deletions by the default refresh.
            assert search_index.refresh(s, full=op == "rewrite").mode in ("base", "delta")
    full = load_settings(warehouse=root / "full" / "wh.duckdb")
    full.warehouse.path.parent.mkdir()
    shutil.copyfile(s.warehouse.path, full.warehouse.path)
    assert search_index.refresh(full, rebuild=True).mode == "base"
    for text in _QUERIES:
        incremental, rebuilt = _ranked(s, text), _ranked(full, text)
        assert incremental == rebuilt, text
        assert incremental[0] == incremental[1][:50], text  # the macro ranks as `newsflow search` does


def test_a_refresh_that_dies_midway_leaves_the_previous_index_and_the_next_one_cleans_up(tmp_path: Path) -> None:
    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(s, [_doc(0, *STORIES[0])], "b-1")
    search_index.refresh(s)
    _load(s, [_doc(3, *STORIES[3])], "b-2")
    with pytest.MonkeyPatch.context() as mp:  # dies after writing its segment, before the new head is in place
        mp.setattr(search_index.segs, "write_head", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(OSError, match="disk full"):
            search_index.refresh(s)
    assert len(list(search_index.segments_dir(s.warehouse).glob("*.duckdb"))) == 2  # one of them an orphan
    assert _titles(s, "harbour") == ["Marathon season"] and _titles(s, "apple") == []  # the previous state
    assert search_index.refresh(s).segments == 2
    assert _titles(s, "apple") == ["Orchard harvest"]
    assert _segment_files(s) == 2  # the orphan is gone


def test_an_open_reader_keeps_its_index_while_a_rebuild_replaces_it(filled: Settings, tmp_path: Path) -> None:
    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(s, [_doc(0, *STORIES[0])], "b-1")
    search_index.refresh(s)
    with duckdb.connect() as reader:
        search.install(reader, s.warehouse)
        _load(s, [_doc(3, *STORIES[3])], "b-2")
        assert search_index.refresh(s, rebuild=True).mode == "base"
        assert reader.execute("select count(*) from search_articles('apple')").fetchone()[0] == 0
    assert _titles(s, "apple") == ["Orchard harvest"]
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob("*.build*"))


def test_a_searcher_keeps_its_connection_and_follows_a_refresh(tmp_path: Path) -> None:
    """A long-lived caller's Searcher answers from one connection, and from the new index once a refresh (here a
    rebuild, which deletes the segment files it had open) has replaced the head."""
    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(s, [_doc(0, *STORIES[0])], "b-1")
    search_index.refresh(s)
    with search.Searcher(s.warehouse) as searcher:
        assert [h.title for h in searcher.search(parse("harbour"), search.Filters())] == ["Marathon season"]
        conn = searcher.conn
        _load(s, [_doc(3, *STORIES[3])], "b-2")
        assert search_index.refresh(s, rebuild=True).mode == "base"
        hits = searcher.search(parse("apple"), search.Filters())
        assert [h.title for h in hits] == ["Orchard harvest"] and "«Apple»" in hits[0].snippet
        assert searcher.conn is conn
    assert _titles(s, "apple harvest") == ["Orchard harvest"]


def test_an_index_of_the_older_format_is_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An index written before the texts moved to their own files (format 2) is not read: search says how to
    rebuild it, and the next refresh builds it anew."""
    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(s, [_doc(n, *story) for n, story in enumerate(STORIES[:4])], "b-1")
    search_index.refresh(s)
    with duckdb.connect(str(s.warehouse.search_path)) as head:
        head.execute("update meta set format = 2")
    with pytest.raises(search.SearchIndexMissing, match="older format"):
        search.search(s.warehouse, parse("apple"), search.Filters())
    assert main(["search", "--warehouse", str(s.warehouse.path), "apple"]) == 2
    assert "--rebuild" in capsys.readouterr().err
    done = search_index.refresh(s)
    assert (done.mode, done.reason, done.articles) == ("base", "no index yet", 4)
    assert _titles(s, "apple") == ["Orchard harvest"]
    assert _segment_files(s) == 1


def test_a_warehouse_without_articles_has_an_empty_index(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    assert database.ensure_ready(s.warehouse)
    assert search_index.refresh(s).articles == 0
    assert main(["search", "--warehouse", str(s.warehouse.path), "anything"]) == 0
    assert capsys.readouterr().out.strip() == "no matches"


def test_search_answers_while_a_writer_holds_the_warehouse(filled: Settings) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    with database.connect(filled.warehouse) as conn:  # a load in progress holds the file
        conn.execute("begin transaction")
        out = subprocess.run([sys.executable, "-m", "flows.cli", "search", "--warehouse",
                              str(filled.warehouse.path), "--format", "json", "coal"],
                             capture_output=True, text=True, env=env, timeout=120)
        conn.execute("rollback")
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["copies"] for line in out.stdout.splitlines()] == [1]


def test_ducklake_warehouse(tmp_path: Path) -> None:
    s = load_settings(overrides={"warehouse": {"backend": "ducklake", "catalog": str(tmp_path / "cat.ducklake")}})
    _load(s, _stories(), "b-1")
    assert s.warehouse.search_path == tmp_path / "cat.search.duckdb"
    assert search_index.refresh(s).articles == len(STORIES)
    assert _titles(s, "coal") == ["Carbon levy"]
    _load(s, [_doc(9, "en", "Ferry strike", "Ferry crews walked out over pay at the harbour.")], "b-2")
    done = search_index.refresh(s)  # on a lake too, only what loads wrote since the mark
    assert (done.compared, done.indexed, done.articles) == ("new", 1, len(STORIES) + 1)
    assert _titles(s, "ferry") == ["Ferry strike"]


# ---------------------------------------------------------------- the CLI contract and the SQL macro

@pytest.mark.parametrize(("argv", "message"), [
    (['"unbalanced'], "unbalanced quote"),
    (["--", "-coal"], "needs a word"),
    ([], "give a search query"),
    (["coal", "--limit", "0"], "--limit"),
    (["coal", "--since", "2026-12-01", "--until", "2026-11-01"], "after --until"),
])
def test_cli_bad_input_is_one_line_and_exit_2(filled: Settings, capsys: pytest.CaptureFixture, argv: list[str],
                                             message: str) -> None:
    assert main(["search", "--warehouse", str(filled.warehouse.path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("newsflow: ") and message in err


def test_cli_without_an_index_says_how_to_build_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(s, [_doc(0, *STORIES[0])], "b-1")
    assert main(["search", "--warehouse", str(s.warehouse.path), "harbour"]) == 2
    assert "--rebuild" in capsys.readouterr().err
    assert main(["search", "--warehouse", str(s.warehouse.path), "--rebuild", "harbour", "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("article_id,score") and "Marathon season" in out[1]


def test_cli_table_and_sql_macro(filled: Settings, capsys: pytest.CaptureFixture) -> None:
    assert main(["search", "--warehouse", str(filled.warehouse.path), "coal"]) == 0
    out = capsys.readouterr().out
    assert "Carbon levy" in out and "1 copy ·" in out and "«coal»" in out
    sql = ("select s.title, s.copies, count(d.url) as dups from search_articles('\"prime minister\" OR apple') s "
           "left join duplicates d on d.duplicate_of = s.article_id group by all order by s.title")
    assert main(["sql", "--warehouse", str(filled.warehouse.path), "--format", "csv", sql]) == 0
    assert capsys.readouterr().out.splitlines() == ["title,copies,dups", "Carbon levy,1,1", "Orchard harvest,0,0"]


def test_the_printed_sql_gives_the_macro_to_another_program(filled: Settings, capsys: pytest.CaptureFixture) -> None:
    assert main(["search", "--warehouse", str(filled.warehouse.path), "--print-sql"]) == 0
    script = capsys.readouterr().out
    with duckdb.connect(str(filled.warehouse.path), read_only=True) as conn:
        for statement in conn.extract_statements(script):
            conn.execute(statement)
        rows = conn.execute("select a.url, s.copies from search_articles('levy', lang := 'en') s "
                            "join articles a using (article_id) order by s.score desc").fetchall()
    assert [r[1] for r in rows] == [1, 0] and rows[0][0] == "https://outlet.example/1"


def test_a_run_does_not_build_a_missing_index_of_a_large_warehouse(tmp_path: Path) -> None:
    """Above the run's build limit a missing index is left to maintenance (skipped, saying how to build it);
    at or under it, the refresh builds it (flows/warehouse/search_index.py RUN_BUILD_LIMIT)."""
    settings = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(settings, [_doc(n, *story) for n, story in enumerate(STORIES[:4])], "b-1")
    skipped = search_index.refresh(settings, build_limit=3)
    assert skipped.mode == "skipped" and "newsflow search --rebuild" in skipped.reason
    assert not settings.warehouse.search_path.exists()
    built = search_index.refresh(settings, build_limit=4)
    assert (built.mode, built.articles) == ("base", 4)


# ---------------------------------------------------------------- a damaged index

def _indexed(tmp_path: Path) -> Settings:
    s = load_settings(warehouse=tmp_path / "wh.duckdb")
    _load(s, _stories()[:-1], "b-1")
    assert search_index.refresh(s).mode == "base"
    return s


def _segment(s: Settings, suffix: str) -> Path:
    found = sorted(s.warehouse.search_segments_dir.glob(f"*{suffix}"))
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize(("suffix", "damage"), [(".post", "cut"), (".text", "cut"), (".text", "garbage"),
                                               (".duckdb", "cut")])
def test_a_damaged_segment_file_is_one_line_naming_it_and_the_cache_step_rebuilds_it(
        tmp_path: Path, capsys: pytest.CaptureFixture, suffix: str, damage: str) -> None:
    from flows.ops import upkeep

    s = _indexed(tmp_path)
    damaged = _segment(s, suffix)
    size = damaged.stat().st_size
    with damaged.open("r+b") as f:  # what a disk error or a copy cut short leaves
        if damage == "cut":
            # The postings file past its header (its arrays' bounds are checked at open); the text file before any
            # whole record (it is checked where a result's record is read); the DuckDB file half way.
            f.truncate(10 if suffix == ".text" else size // 2)
        else:  # every record's bytes overwritten, its length kept
            f.write(bytes(range(256)) * (size // 256) + b"\xff" * (size % 256))
    code = main(["search", "--warehouse", str(s.warehouse.path), "harbour"])
    err = capsys.readouterr().err
    if suffix == ".duckdb":  # not read by `newsflow search` (the SQL macro and merges read it)
        assert code == 0
    else:
        assert code == 2 and err.count("\n") == 1 and err.startswith("newsflow: search index damaged: ")
        assert str(damaged) in err and "--rebuild" in err
    did = upkeep.run_step("cache", s, "m", False).did
    assert f"search index damaged ({damaged}: " in did and "): base" in did, did
    assert main(["search", "--warehouse", str(s.warehouse.path), "harbour", "--format", "csv"]) == 0
    assert "Marathon season" in capsys.readouterr().out
    # Whole again: the next cache step compares, it does not rebuild.
    assert "search index present: compared with every article" in upkeep.run_step("cache", s, "m", False).did


@pytest.mark.parametrize("damage", ["cut", "garbage", "folder", "foreign"])
def test_a_damaged_head_is_one_line_naming_it_and_what_mends_it(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                  damage: str) -> None:
    """The head (the index's DuckDB file, replaced whole by each refresh) cut short, overwritten, replaced by a
    folder or by another DuckDB file: `newsflow search` says so in one line (it ended as an unexpected IOException,
    or CatalogException), and what mends it does."""
    from flows.ops import upkeep

    s = _indexed(tmp_path)
    head = s.warehouse.search_path
    size = head.stat().st_size
    if damage == "folder":
        head.unlink()
        head.mkdir()
    elif damage == "foreign":
        head.unlink()
        duckdb.connect(str(head)).close()
    else:
        with head.open("r+b") as f:
            if damage == "cut":
                f.truncate(size // 3)
            else:
                f.write(bytes(range(256)) * (size // 256))
    code = main(["search", "--warehouse", str(s.warehouse.path), "harbour"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith({"folder": f"newsflow: {head}: a folder where",
                           "foreign": f"newsflow: search index damaged: {head} is a DuckDB file without the index's "
                                      "tables"}.get(damage, f"newsflow: search index damaged: {head} cannot be read")
                          ), err
    assert "`newsflow search --rebuild`" in err
    if damage == "folder":
        head.rmdir()  # what the line says: moved away, then rebuilt
        assert main(["search", "--warehouse", str(s.warehouse.path), "--rebuild"]) == 0
    elif damage == "foreign":
        assert main(["search", "--warehouse", str(s.warehouse.path), "--rebuild"]) == 0
    else:
        assert "search index missing: base" in upkeep.run_step("cache", s, "m", False).did
    capsys.readouterr()
    assert main(["search", "--warehouse", str(s.warehouse.path), "harbour", "--format", "csv"]) == 0
    assert "Marathon season" in capsys.readouterr().out


@pytest.fixture(scope="module")
def postings_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _segment(_indexed(tmp_path_factory.mktemp("post")), ".post").read_bytes()


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_postings_file_cut_anywhere_or_with_a_garbled_header_is_refused_as_damaged(
        postings_bytes: bytes, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """Never an IndexError or a wrong answer later: any cut, or bytes overwritten in the header, is refused at
    open as DamagedPostingsError (the search then says which file and how to mend it)."""
    from flows.warehouse.search_postings import HEADER, DamagedPostingsError, open_postings

    whole = postings_bytes
    if data.draw(st.booleans(), label="cut"):
        damaged = whole[:data.draw(st.integers(0, len(whole) - 1), label="length")]
    else:
        at = data.draw(st.integers(0, HEADER - 1), label="at")
        junk = data.draw(st.binary(min_size=1, max_size=64), label="junk")
        damaged = whole[:at] + junk + whole[at + len(junk):]
        if damaged[:HEADER] == whole[:HEADER]:
            return
    path = tmp_path_factory.mktemp("cut") / "s.post"
    path.write_bytes(damaged)
    try:
        post = open_postings(path)
    except DamagedPostingsError:
        return
    # Only a garbled header that still parses to the same layout may open (a space for a space, say).
    assert len(damaged) == len(whole) and len(post.ids) == len(STORIES)
