"""The warehouse does not depend on the order of documents nor on how a run is cut into batches (hypothesis).

The same documents (our labelled stories, their copies and the negatives in tests/data/dedup) are loaded through
the real loader into a real DuckDB file with batch sizes 1, 7 and 64, in orders hypothesis draws. Which copy of
a story is kept may differ with the order (the first loaded is the original), but the clusters (each stored
article with the copies recorded against it), the entities of each cluster and the set of stories must not.
Within one batch the choice of the kept copy is deterministic: any order of one batch gives the same warehouse.

Covers: flows.warehouse.writer
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.core.records import Document
from flows.core.sections import DedupSettings
from flows.core.settings import WarehouseSettings
from flows.run.documents import signature_fields
from flows.warehouse.database import connect, migrate
from flows.warehouse.staging import Batch
from flows.warehouse.writer import load_batch

DATA = Path(__file__).parent / "data" / "dedup"
DEDUP = DedupSettings()
# Copies that stay close to their story and to each other: a cluster whose members are all pairwise copies
# has one right answer whatever the order. (Summaries and merged stories are copies of the original only, so
# which of them is found depends on which member came first; tests/test_dedup.py covers them.)
KINDS = ("boilerplate_added", "boilerplate_removed", "new_headline", "reordered", "lightly_edited")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _documents() -> list[Document]:
    docs = []
    for i, path in enumerate(sorted((DATA / "stories").glob("*.txt"))):
        story = path.stem
        members = [path] + [DATA / "variants" / f"{story}__{k}.txt" for k in KINDS]
        for j, member in enumerate(members):
            docs.append(_doc(f"https://outlet{j}.example/{member.stem}", member.read_text(), story, i))
    for k, path in enumerate(sorted((DATA / "negatives").glob("*.txt"))):
        docs.append(_doc(f"https://other.example/{path.stem}", path.read_text(), f"neg-{path.stem}", 100 + k))
    return docs


def _doc(url: str, text: str, story: str, day: int) -> Document:
    # Entities stand in for NER output: the same per story, so a cluster's entities do not depend on its copy.
    mentions = [{"name": f"{story} person", "label": "PERSON", "mentions": 2},
                {"name": f"{story} place", "label": "GPE", "mentions": 1}]
    return Document(url=url, text=text, body_source="extracted", feed="f",
                    published_at=T0 + timedelta(days=day % 3), mentions=mentions, ner_pipeline="test-1",
                    **signature_fields(text, DEDUP))


DOCS = _documents()


def _load(root: Path, docs: list[Document], size: int) -> dict[str, object]:
    wh = WarehouseSettings(path=root / "wh.duckdb")
    with connect(wh) as conn:
        migrate(conn)
        for n, start in enumerate(range(0, len(docs), size)):
            batch = Batch(f"b-{n:04d}", "run-1")
            batch.add("docs", *docs[start:start + size])
            load_batch(conn, batch, DEDUP)
        articles = dict(conn.execute("select article_id, url from articles").fetchall())
        dups = conn.execute("select url, duplicate_of from duplicates").fetchall()
        ents = conn.execute("select a.url, e.name, e.label, ae.mentions from article_entities ae "
                            "join articles a using (article_id) join entities e using (entity_id)").fetchall()
        exact = sorted(conn.execute("select * exclude (loaded_at, run_id) from articles").fetchall(), key=repr)
        exact_dups = sorted(conn.execute("select * exclude (seen_at, run_id) from duplicates").fetchall(), key=repr)
        placed = conn.execute("select story_id, url from story_articles").fetchall()
    clusters: dict[str, set[str]] = {url: {url} for url in articles.values()}
    for url, original in dups:
        clusters[articles[original]].add(url)
    by_kept: dict[str, list[tuple]] = {}
    for url, name, label, mentions in ents:
        by_kept.setdefault(url, []).append((name, label, mentions))
    stories: dict[int, list[str]] = {}
    for story_id, url in placed:
        stories.setdefault(story_id, []).append(url)
    return {
        "clusters": sorted(sorted(c) for c in clusters.values()),
        "stories": sorted(sorted(s) for s in stories.values()),
        # The negatives are written on the labelled stories' topics: whether one joins its topic's story depends on
        # what was placed before it (a single pass), so order-independence is asked of the labelled stories.
        "labelled_stories": sorted(sorted(u for u in s if not u.startswith("https://other.")) for s in stories.values()
                                   if any(not u.startswith("https://other.") for u in s)),
        "entities": sorted((tuple(sorted(clusters[url])), tuple(sorted(e))) for url, e in by_kept.items()),
        "exact": (exact, exact_dups, sorted(ents)),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return _load(tmp_path_factory.mktemp("ref"), DOCS, 64)


def test_the_reference_finds_every_story_and_merges_no_negative(reference: dict[str, object]) -> None:
    clusters = reference["clusters"]
    stories = sorted(p.stem for p in (DATA / "stories").glob("*.txt"))
    negatives = len(list((DATA / "negatives").glob("*.txt")))
    assert len(clusters) == len(stories) + negatives  # type: ignore[arg-type]
    assert sorted(len(c) for c in clusters)[-len(stories):] == [1 + len(KINDS)] * len(stories)  # type: ignore
    # Stories: every article and copy is in one story, each dedup cluster (an original and its copies) whole in one,
    # and no two of the labelled stories in the same one (a negative on a story's topic may join it).
    story_of = {url: n for n, story in enumerate(reference["stories"]) for url in story}  # type: ignore[union-attr]
    assert sorted(story_of) == sorted(url for c in clusters for url in c)  # type: ignore[union-attr]
    assert all(len({story_of[url] for url in c}) == 1 for c in clusters)  # type: ignore[union-attr]
    big = [c for c in clusters if len(c) == 1 + len(KINDS)]  # type: ignore[union-attr, arg-type]
    assert len({story_of[c[0]] for c in big}) == len(stories)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(len(DOCS))), size=st.sampled_from([1, 7, 64]))
def test_order_and_batch_size_do_not_change_the_warehouse(
        tmp_path_factory: pytest.TempPathFactory, reference: dict[str, object], order: list[int], size: int) -> None:
    got = _load(tmp_path_factory.mktemp("inv"), [DOCS[i] for i in order], size)
    assert got["clusters"] == reference["clusters"]
    assert got["entities"] == reference["entities"]
    assert got["labelled_stories"] == reference["labelled_stories"]
    assert sorted(u for s in got["stories"] for u in s) == sorted(u for s in reference["stories"] for u in s)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(len(DOCS))))
def test_within_one_batch_the_kept_copy_does_not_depend_on_order(
        tmp_path_factory: pytest.TempPathFactory, reference: dict[str, object], order: list[int]) -> None:
    got = _load(tmp_path_factory.mktemp("one"), [DOCS[i] for i in order], 64)
    assert got["exact"] == reference["exact"]
