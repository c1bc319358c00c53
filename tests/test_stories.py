"""Stories: the pure online clusterer (copies join their original, unrelated articles stay apart, French and English
join through entities, a story closes after its window), the same clusterer over a real DuckDB file (whatever the
batching, the same stories as cluster_offline), the loader, the rebuild, the check, the command and the demo.

Covers: flows.text.stories
Covers: flows.text.storyterms
Covers: flows.warehouse.storystore
Covers: flows.cli.story_command
Covers: flows.warehouse.storyreport
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from demo_warehouse import copy_demo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.cli import main
from flows.core.records import Document
from flows.core.sections import DedupSettings, StoriesSettings
from flows.core.settings import WarehouseSettings
from flows.run import artifacts
from flows.run.documents import signature_fields
from flows.text import storyterms
from flows.text.stories import StoryIndex, StoryItem, StorySettings, cluster_offline, epoch_us, order_key
from flows.warehouse import checks, reportpage, storystore
from flows.warehouse.database import connect, migrate
from flows.warehouse.staging import Batch, stable_key
from flows.warehouse.writer import load_batch

T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)
QUAKE = ("Japan", "Miyagi", "Fukushima", "Japan Meteorological Agency")


def _item(key: str, title: str, text: str, hours: float, outlet: str = "a", language: str | None = "en",
          entities: tuple[str, ...] = (), copy_of: str | None = None) -> StoryItem:
    return StoryItem(key, title, text, T0 + timedelta(hours=hours), outlet, language, entities, copy_of)


ITEMS = [
    _item("101", "Earthquake strikes northern Japan, tsunami warning issued",
          "A magnitude 7.1 earthquake struck off the coast of northern Japan on Monday, prompting a tsunami warning "
          "for Miyagi and Fukushima prefectures, the Japan Meteorological Agency said. Trains were halted.", 0,
          "a", entities=QUAKE),
    _item("102", "Strong quake hits Japan coast; tsunami alert for Miyagi",
          "Residents of Miyagi fled to higher ground after a strong earthquake of magnitude 7.1 shook northern "
          "Japan. The Japan Meteorological Agency issued a tsunami alert and bullet trains stopped.", 2, "b",
          entities=QUAKE),
    _item("103", "Séisme au Japon : alerte au tsunami à Miyagi et Fukushima",
          "Un séisme de magnitude 7,1 a frappé le nord du Japon lundi. L'agence météorologique japonaise a émis "
          "une alerte au tsunami pour Miyagi et Fukushima ; les trains ont été arrêtés.", 3, "c", "fr",
          ("Japon", "Miyagi", "Fukushima")),
    _item("104", "European Central Bank raises interest rates again",
          "The European Central Bank raised its key interest rate by a quarter point on Thursday, citing persistent "
          "inflation in the euro zone. Christine Lagarde said more increases could follow.", 1, "a",
          entities=("European Central Bank", "Christine Lagarde")),
    _item("105", "Record transfer: Vercelli joins Almansa",
          "Italian midfielder Matteo Vercelli has joined Atlético Almansa for a club-record fee, signing a five-year "
          "contract with the Spanish side after a medical on Tuesday.", 4, "d",
          entities=("Matteo Vercelli", "Atlético Almansa")),
    _item("106", "Strong quake hits Japan coast; tsunami alert for Miyagi", "", 5, "e", copy_of="102"),
]


def _groups(assigned: dict[str, str]) -> list[list[str]]:
    by: dict[str, list[str]] = {}
    for article, story in assigned.items():
        by.setdefault(story, []).append(article)
    return sorted(sorted(g) for g in by.values())


def test_copies_join_their_original_and_unrelated_stories_stay_apart() -> None:
    got = cluster_offline(ITEMS)
    assert got["106"] == got["102"] == got["101"]
    assert _groups(got) == [["101", "102", "103", "106"], ["104"], ["105"]]
    assert got["101"] == "101"  # a story's id is the article that started it


def test_french_and_english_join_through_their_entities_only() -> None:
    en, fr = ITEMS[0], ITEMS[2]
    assert len(set(cluster_offline([en, fr]).values())) == 1
    nameless = replace(fr, entities=())
    assert len(set(cluster_offline([en, nameless]).values())) == 2
    # Across languages the shared names weigh more than within one (the words mostly differ).
    scores = []
    for weight in (StorySettings().entity_weight, StorySettings().cross_entity_weight):
        index = StoryIndex(replace(StorySettings(), cross_entity_weight=weight))
        index.place(en)
        scores.append(index.place(fr).similarity)
    assert scores[1] > scores[0] + 0.1


def test_shared_names_weigh_more_for_a_title_alone_than_for_an_article_with_its_text() -> None:
    """A title alone has too few words to match without its names (title_entity_weight); with a text the names
    are among its terms already, so shared names alone do not make one story of two texts about other things."""
    t0 = datetime(2024, 3, 1, 9, tzinfo=UTC)
    names = ("Geneva", "United Nations", "Iran")
    a = StoryItem("1", "Talks resume by the lake", "", t0, "Outlet A", "en", names)
    b = StoryItem("2", "Envoys gather once more", "", t0 + timedelta(hours=2), "Outlet B", "en", names)
    assert len(set(cluster_offline([a, b]).values())) == 1
    a_text = replace(a, text="Delegates discussed the nuclear programme and sanctions relief for hours.")
    b_text = replace(b, text="A concert for refugee children raised funds at the lakeside hall.")
    assert len(set(cluster_offline([a_text, b_text]).values())) == 2
    assert len(set(cluster_offline([a_text, b_text], replace(StorySettings(), entity_weight=0.25)).values())) == 1


def test_a_story_closes_after_its_window() -> None:
    first, second = ITEMS[0], ITEMS[1]
    late = replace(second, published=first.published + timedelta(days=StorySettings().window_days, hours=1))
    assert len(set(cluster_offline([first, late]).values())) == 2
    assert len(set(cluster_offline([first, second]).values())) == 1


def test_background_articles_count_in_the_frequencies_and_are_never_placed() -> None:
    """cluster_offline's `background`: earlier articles, whose terms a warehouse that ran before has counted. Two
    write-ups of different events that share only words every earlier article used are apart then, and one story
    on an empty index, where every word is as rare as any other."""
    common = "minister parliament budget vote government"
    a = _item("1", "Minister faces parliament vote on budget",
              f"The {common} debate turned to fisheries quotas and trawler licences off the northern coast.", 0, "a")
    b = _item("2", "Government budget vote in parliament",
              f"The {common} session ended with a row over rail electrification and tram depots in the capital.", 2,
              "b")
    earlier = [_item(f"b{i}", f"Parliament minister vote {i}", f"The {common} item {i} about topic{i}.", i - 48, "z")
               for i in range(40)]
    assert cluster_offline([a, b]) == {"1": "1", "2": "1"}
    assert cluster_offline([a, b], background=earlier) == {"1": "1", "2": "2"}
    # Counted as placing them would count them (placing also makes their stories).
    counted, placed = StoryIndex(StorySettings()), StoryIndex(StorySettings())
    counted.count(earlier)
    for item in earlier:
        placed.place(item)
    assert (counted.df, counted.docs, counted.stories) == (placed.df, placed.docs, {})


def test_the_tokenizer_folds_accents_and_drops_stopwords() -> None:
    assert storyterms.tokens("L'Élysée a reçu les ministres") == ["elyse", "recu", "ministr"]
    assert storyterms.tokens("The earthquakes were striking") == ["earthquak", "strik"]
    counts = storyterms.term_counts("Quake", "quake quake tsunami", body_words=400)
    assert counts["quak"] == 2 + 2 + 2 and counts["tsunami"] == 2  # title twice, lede twice, body once


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_text_folds_as_the_unicode_path_would(text: str) -> None:
    """fold skips the per-character decomposition for ASCII text: the result is the one it would give."""
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text.casefold())
    assert storyterms.fold(text) == "".join(c for c in decomposed if not unicodedata.combining(c))


def test_a_batch_memo_of_terms_changes_no_count() -> None:
    memo: dict[str, str | None] = {}
    for item in ITEMS + CORPUS:
        assert storyterms.term_counts(item.title, item.text, 400, memo) == storyterms.term_counts(
            item.title, item.text, 400)
    assert memo["earthquake"] == "earthquak" and memo["the"] is None


def test_the_config_section_and_the_clusterer_have_the_same_defaults() -> None:
    section = StoriesSettings()
    assert StorySettings.from_config(section) == StorySettings()
    assert {f.name for f in fields(StorySettings)} == set(StoriesSettings.model_fields) - {"enabled"}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_cluster_offline_does_not_depend_on_the_order_given(seed: int) -> None:
    shuffled = list(ITEMS)
    random.Random(seed).shuffle(shuffled)
    assert cluster_offline(shuffled) == cluster_offline(ITEMS)


# -- the same clusterer over the warehouse -------------------------------------------------------------------------

def _corpus(n: int = 36) -> list[StoryItem]:
    """Twelve events over twelve days, each written up three times by different outlets with different words."""
    rng = random.Random(7)
    words = [f"w{i:03d}" for i in range(400)]
    out = []
    for event in range(12):
        own = rng.sample(words, 14)
        names = (f"Person {event}", f"Place {event}")
        for k in range(3):
            text = " ".join(rng.sample(own, 10) + rng.sample(words, 12))
            out.append(StoryItem(str(1000 + 3 * event + k), " ".join(rng.sample(own, 4)), text,
                                 T0 + timedelta(hours=24 * event + 3 * k), f"outlet{k}", "en", names))
    return out[:n]


CORPUS = _corpus()


def _place_batches(path: Path, batches: list[list[StoryItem]]) -> dict[str, str]:
    with duckdb.connect(str(path)) as conn:
        migrate(conn)
        for batch in batches:
            conn.execute("begin transaction")
            storystore.place(conn, batch, {i.article_id: f"https://x.example/{i.article_id}" for i in batch},
                             StorySettings(), T0)
            conn.execute("commit")
        return {str(a): str(s) for a, s in conn.execute("select article_id, story_id from story_articles").fetchall()}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, len(CORPUS) - 1), max_size=6, unique=True), seed=st.integers(0, 2**32 - 1))
def test_the_warehouse_gives_the_stories_cluster_offline_gives_whatever_the_batches(
        tmp_path_factory: pytest.TempPathFactory, cuts: list[int], seed: int) -> None:
    """Articles arriving in canonical order, cut into any batches, each batch in any order: exactly cluster_offline
    (ids and all), so the in-memory evaluation measures what the loader does."""
    ordered = sorted(CORPUS, key=order_key)
    bounds = [0, *sorted(cuts), len(ordered)]
    batches = [ordered[a:b] for a, b in itertools.pairwise(bounds)]
    for batch in batches:
        random.Random(seed).shuffle(batch)
    got = _place_batches(tmp_path_factory.mktemp("place") / "wh.duckdb", batches)
    assert got == cluster_offline(CORPUS)
    assert len(set(got.values())) == 12  # every event one story, none merged


def _dense_corpus() -> list[StoryItem]:
    """Fifteen events in one window, each with words of its own, all written with some of twelve common words and
    one of two shared places: every open story shares keys with most articles, so the rankings reach the cut
    (max_candidates) among ties, and a batch's first read misses candidates as the batch moves the frequencies."""
    rng = random.Random(11)
    common = [f"c{i:02d}" for i in range(12)]
    out = []
    for k in range(90):
        own = [f"e{k % 15}w{i}" for i in range(10)]
        out.append(StoryItem(str(5000 + k), " ".join(rng.sample(own, 3)),
                             " ".join(rng.sample(own, 8) * 2 + rng.sample(common, 6)),
                             T0 + timedelta(minutes=20 * k), f"outlet{k % 7}", "en",
                             (f"Name {k % 15}", f"Place {k % 2}")))
    return out


DENSE = _dense_corpus()


@pytest.mark.parametrize("size", [7, 30])
def test_dense_stories_tied_at_the_cut_are_placed_as_in_memory(tmp_path: Path, size: int) -> None:
    """Where many stored stories share as many keys with an article (the ranking cut among ties, stories read again
    as the batch moves the frequencies), the warehouse still gives cluster_offline's stories."""
    ordered = sorted(DENSE, key=order_key)
    got = _place_batches(tmp_path / "wh.duckdb", [ordered[i:i + size] for i in range(0, len(ordered), size)])
    assert got == cluster_offline(DENSE)
    assert len(set(got.values())) == 15


def test_the_warehouse_ranks_candidates_as_memory_does_at_every_article(tmp_path: Path) -> None:
    """Half the dense corpus stored, the other half placed by a warehouse-backed index and an in-memory one in step:
    before each article, both rank the same candidates in the same order, at the cut (ties) and beyond it."""
    ordered = sorted(DENSE, key=order_key)
    stored, batch = ordered[:45], ordered[45:]
    path = tmp_path / "wh.duckdb"
    _place_batches(path, [stored])
    memory = StoryIndex(StorySettings())
    for item in stored:
        memory.place(item)
    with duckdb.connect(str(path)) as conn:
        conn.execute("begin transaction")
        index = StoryIndex(StorySettings(), docs=len(stored), backing=storystore.WarehouseBacking(conn))
        index.prefetch(batch)
        for item in batch:
            vec, _ = index.vector(item)
            assert vec == memory.vector(item)[0]
            query, entities = index._query(vec, 12), sorted(set(item.entities))
            since = item.published - timedelta(days=3)
            for limit in (None, 3, 14, 100):
                assert index._ranked(query, entities, since, limit) == memory._ranked(query, entities, since, limit)
            assert index.place(item) == memory.place(item)
        conn.execute("rollback")


def _postings(backing: storystore.WarehouseBacking, terms: list[str], entities: list[str], since: datetime | None
              ) -> dict[tuple[str, str], tuple[list[str], list[int]]]:
    """The backing's postings, ids as text."""
    return {key: (list(map(str, sids)), lasts)
            for key, (sids, lasts) in backing.postings(terms, entities, since).items()}


def test_the_backing_reads_postings_and_live_stories_by_key(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    _place_batches(path, [sorted(CORPUS, key=order_key)])
    with duckdb.connect(str(path)) as conn:
        backing = storystore.WarehouseBacking(conn)
        found = _postings(backing, [], ["Person 9"], None)
        story, = backing.stories(["1027"])
        assert found == {("e", "Person 9"): (["1027"], [-epoch_us(story.last)])}
        assert story.size == 3 and story.entities == {"Person 9": 3, "Place 9": 3} and story.languages == {"en": 3}
        assert story.last == T0 + timedelta(hours=24 * 9 + 6) and len(story.terms) > 3
        # A few ids are read by parameters, more through a registered table: the same stories either way.
        many = [str(r[0]) for r in conn.execute("select story_id from story_live order by story_id").fetchall()]
        assert len(many) > 4
        by_table = {s.story_id: (s.size, s.terms, s.entities) for s in backing.stories(many)}
        assert by_table == {s.story_id: (s.size, s.terms, s.entities)
                            for i in range(0, len(many), 2) for s in backing.stories(many[i:i + 2])}
        assert backing.stories([]) == []
        # A story whose last article is before `since` is no article's candidate: its postings are not read.
        assert _postings(backing, [], ["Person 9"], story.last) == found
        assert _postings(backing, [], ["Person 9"], story.last + timedelta(microseconds=1)) == {}
        assert _postings(backing, ["nosuchterm"], [], None) == {}
        assert backing.df(["nosuchterm", next(iter(story.terms))])[next(iter(story.terms))] >= 3
        # Only stories open for an article up to a window late stay in the live tables (days 5-11 of 0-11).
        assert _postings(backing, [], ["Person 3"], None) == {}
        assert conn.execute("select count(*) from story_live").fetchone()[0] == 7
        assert conn.execute("select count(*) from stories").fetchone()[0] == 12


def _doc(url: str, text: str, title: str, hours: float, names: tuple[str, ...], feed: str = "f") -> Document:
    mentions = [{"name": n, "label": "GPE", "mentions": 1} for n in names]
    return Document(url=url, text=text, title=title, body_source="extracted", feed=feed,
                    published_at=T0 + timedelta(hours=hours), mentions=mentions, ner_pipeline="test-1",
                    language="en", **signature_fields(text, DedupSettings()))


QUAKE_TEXT = ("A magnitude 7.1 earthquake struck off the coast of northern Japan on Monday morning, prompting a "
              "tsunami warning for Miyagi and Fukushima prefectures, the Japan Meteorological Agency said. Bullet "
              "train services were suspended while engineers checked the tracks, and nuclear plant operators "
              "reported no abnormalities. Residents along the coast were told to move to higher ground. ") * 2


def test_the_loader_places_articles_and_copies_in_its_transaction(tmp_path: Path) -> None:
    wh = WarehouseSettings(path=tmp_path / "wh.duckdb")
    docs = [_doc("https://a.example/quake", QUAKE_TEXT, "Quake hits northern Japan", 0, QUAKE, "a"),
            _doc("https://b.example/quake-copy", QUAKE_TEXT, "Japan quake", 1, QUAKE, "b"),
            _doc("https://c.example/bank", "The European Central Bank raised its key interest rate by a quarter "
                 "point on Thursday, citing persistent inflation in the euro zone. " * 4, "ECB raises rates", 2,
                 ("European Central Bank",), "c")]
    with connect(wh) as conn:
        migrate(conn)
        for n, doc in enumerate(docs):  # one batch each: the copy finds its original's story in the warehouse
            batch = Batch(f"b-{n}", "run-1")
            batch.add("docs", doc)
            result = load_batch(conn, batch, DedupSettings())
        assert result.stories is not None and result.stories.started == [stable_key("https://c.example/bank")]
        rows = conn.execute("select url, story_id, copy_of is not null, similarity from story_articles "
                            "order by url").fetchall()
        original = stable_key("https://a.example/quake")
        assert rows == [("https://a.example/quake", original, False, 0.0),
                        ("https://b.example/quake-copy", original, True, 1.0),
                        ("https://c.example/bank", stable_key("https://c.example/bank"), False, 0.0)]
        story = conn.execute("select articles, originals, outlets, title from stories where story_id = ?",
                             [original]).fetchone()
        assert story == (2, 1, 2, "Quake hits northern Japan")
        results = checks.run_checks(conn, staging_dir=tmp_path / "staging")
        assert {r.name: r.offending_rows for r in results}["stories_consistent"] == 0
        # A story row that no longer matches its members is found.
        conn.execute("update stories set articles = 5 where story_id = ?", [original])
        results = checks.run_checks(conn, staging_dir=tmp_path / "staging")
        assert {r.name: r.offending_rows for r in results}["stories_consistent"] == 1
        # The rebuild repairs it, and gives the same stories.
        before = conn.execute("select article_id, story_id from story_articles order by 1").fetchall()
        assert storystore.rebuild(conn, StorySettings(), chunk=1) == 3
        assert conn.execute("select article_id, story_id from story_articles order by 1").fetchall() == before
        results = checks.run_checks(conn, staging_dir=tmp_path / "staging")
        assert {r.name: r.offending_rows for r in results}["stories_consistent"] == 0


def test_an_article_dated_year_one_is_placed_and_the_next_loads(tmp_path: Path) -> None:
    """A feed's "0001-01-01" (now refused at fetch, flows/run/documents.py plausible_date, but a batch staged before
    may hold one): the window reached below year 1, the load raised OverflowError, and the batch stopped every
    later run. Its story starts as any other's, and a later article loads after it."""
    early = replace(_doc("https://a.example/old", QUAKE_TEXT, "Quake hits northern Japan", 0, QUAKE, "a"),
                    published_at=datetime(1, 1, 1, tzinfo=UTC))
    assert cluster_offline([StoryItem("1", "Old", "text", datetime(1, 1, 1, tzinfo=UTC), "a", "en", ())]) == {
        "1": "1"}
    with connect(WarehouseSettings(path=tmp_path / "wh.duckdb")) as conn:
        migrate(conn)
        for n, doc in enumerate([early, _doc("https://c.example/bank", "The European Central Bank raised its key "
                                             "interest rate. " * 8, "ECB raises rates", 2, ("ECB",), "c")]):
            batch = Batch(f"b-{n}", "run-1")
            batch.add("docs", doc)
            load_batch(conn, batch, DedupSettings())
        assert conn.execute("select count(*) from story_articles").fetchone() == (2,)


def test_stories_can_be_turned_off(tmp_path: Path) -> None:
    wh = WarehouseSettings(path=tmp_path / "wh.duckdb")
    with connect(wh) as conn:
        migrate(conn)
        batch = Batch("b-0", "run-1")
        batch.add("docs", _doc("https://a.example/quake", QUAKE_TEXT, "Quake", 0, QUAKE))
        assert load_batch(conn, batch, DedupSettings(), stories=StoriesSettings(enabled=False)).stories is None
        assert conn.execute("select count(*) from story_articles").fetchone()[0] == 0


# -- the command and the demo ---------------------------------------------------------------------------------------

SEED_EVENT = ("harbour-herald/wang-yi-kremlin-putin-hears-peace-plan.html",
              "meridian-post/china-envoy-wang-yi-moscow-xi-visit.html",
              "northgate-courier/xi-jinping-attendu-moscou-wang-yi-poutine.html")


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, prefect_harness: None) -> Path:
    return copy_demo(tmp_path_factory, tmp_path / "wh" / "demo.duckdb")


def test_the_demo_groups_the_seed_event_and_keeps_other_stories_apart(
        demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stories", "--warehouse", str(demo), "--format", "json", "--limit", "100"]) == 0
    stories = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    seed = stories[0]
    urls = [m["url"] for m in seed["timeline"]]
    assert any(u.startswith("seed:") for u in urls)
    assert sum(m["is_copy"] for m in seed["timeline"]) == 5  # the seed's syndicated copies
    assert all(any(u.endswith(page) for u in urls) for page in SEED_EVENT)  # the distinct write-ups
    assert seed["languages"] == ["en", "fr"] and seed["outlets"] >= 5
    # Every unrelated demo story is a story of its own.
    others = [s for s in stories[1:]]
    assert others and all(s["articles"] == 1 for s in others)
    assert len({s["title"] for s in others}) == len(others)
    assert main(["stories", "--warehouse", str(demo), "--min-outlets", "2", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("story_id,title") and len(lines) == 2
    # The table: counts in words that agree with them, and the article that started a story marked as such.
    assert main(["stories", "--warehouse", str(demo), "--limit", "100"]) == 0
    table = capsys.readouterr().out
    assert "10 articles (5 write-ups, 5 copies) · 6 outlets · en, fr" in table
    assert "1 article (1 write-up, 0 copies) · 1 outlet · en" in table and "1 articles" not in table
    assert re.search(r"^ +\d\d-\d\d \d\d:\d\d  seed +first  ", table, re.M)


def test_bad_input_is_one_line_and_exit_2(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["stories", "--limit", "0"], ["stories", "--since", "yesterday"], ["stories", "--min-outlets", "x"],
                 ["search", "moscow", "--story", "12345"]):
        assert main([*argv, "--warehouse", str(demo)]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("newsflow:") and "\n" not in err, err


def test_search_filters_by_story(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with duckdb.connect(str(demo), read_only=True) as conn:
        seed_story, = conn.execute("select story_id from stories order by articles desc limit 1").fetchone()
        other, = conn.execute("select story_id from stories where title like '%Iceland%'").fetchone()
    assert main(["search", "--warehouse", str(demo), "--rebuild", "bank", "--story", str(other),
                 "--format", "json"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert hits and all("Iceland" in h["title"] for h in hits)
    assert main(["search", "--warehouse", str(demo), "bank", "--story", str(seed_story), "--format", "json"]) == 0
    assert all("Iceland" not in json.loads(line)["title"] for line in capsys.readouterr().out.splitlines())


def test_the_report_and_the_run_artifact_show_the_stories(demo: Path) -> None:
    with duckdb.connect(str(demo), read_only=True) as conn:
        page = reportpage.render(conn)
        run_id, = conn.execute("select run_id from story_articles where run_id is not null limit 1").fetchone()
        _failing, _top, stories = artifacts._report_rows(conn, run_id)
    section = page[page.index("<h2>Top stories</h2>"):page.index("</section>", page.index("<h2>Top stories</h2>"))]
    assert "Xi Jinping attendu à Moscou" in section and 'data-chart="story-0"' in section
    assert section.count("<h3>") == 1  # the seed's story: every other demo story is one article
    assert "Iceland" not in section
    assert stories and all(is_new for *_rest, is_new, _langs in stories)  # one run made them all
    text = artifacts.markdown("r1", artifacts.RunStats(), [], [], 3, stories=stories)
    assert "## New and growing stories" in text and "| new |" in text
    assert "growing" in "\n".join(artifacts.stories_markdown([(1, "t", 3, 2, 1, False, ["en"])]))


def test_migration_14_keeps_the_live_state_a_lookup_reads(tmp_path: Path) -> None:
    """The lists of a version-13 warehouse become the strings and hashed postings the backing reads, unchanged."""
    from flows.warehouse import database

    last = T0 + timedelta(hours=5, microseconds=7)
    with duckdb.connect(str(tmp_path / "v13.duckdb")) as conn:
        database.migrate(conn, database.migrations()[:13])
        conn.execute("insert into story_live values (42, $first, $last, 2, ['ceasefire', 'gaza', 'talk'], "
                     "[9000, 700, 5], ['Gaza', 'Zoé \"Q\"'], [2, 1], ['en', 'fr'], [1, 1])",
                     {"first": T0, "last": last})
        conn.execute("insert into story_keys values ('ceasefire', 't', 42), ('gaza', 't', 42), ('talk', 't', 42), "
                     "('Gaza', 'e', 42), ('Zoé \"Q\"', 'e', 42)")
        database.migrate(conn)
        backing = storystore.WarehouseBacking(conn)
        story, = backing.stories(["42"])
        found = _postings(backing, ["gaza", "Gaza", "nosuchterm"], ["Gaza", 'Zoé "Q"'], T0)
    assert (story.first, story.last, story.size) == (T0, last, 2)
    assert list(story.terms.items()) == [("ceasefire", 9000), ("gaza", 700), ("talk", 5)]
    assert story.entities == {"Gaza": 2, 'Zoé "Q"': 1} and story.languages == {"en": 1, "fr": 1}
    posting = (["42"], [-epoch_us(last)])
    assert found == {("t", "gaza"): posting, ("e", "Gaza"): posting, ("e", 'Zoé "Q"'): posting}
