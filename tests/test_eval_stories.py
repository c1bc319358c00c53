"""The story evaluation's scorer (benchmarks/eval_stories.py) on hand-computed examples, and its label files.

Covers: none (benchmarks/eval_stories.py, benchmarks/stories_corpus.py and benchmarks/data/stories/, not a module
of flows/)
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from benchmarks import eval_stories, stories_corpus, stories_rss_corpus
from benchmarks.eval_stories import bcubed, cross_day_merges, pairwise, pairwise_where, title_baseline
from benchmarks.stories_corpus import CorpusMissingError, Headline
from flows.text.stories import StoryItem

DATA = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "stories"


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_bcubed_and_pairwise_on_a_hand_computed_example():
    # gold {1,2,3}{4,5}; predicted {1,2}{3,4,5}.
    gold = {"1": "A", "2": "A", "3": "A", "4": "B", "5": "B"}
    pred = {"1": "x", "2": "x", "3": "y", "4": "y", "5": "y"}
    b = bcubed(gold, pred)
    # precision: 1, 1, 1/3, 2/3, 2/3 -> 11/15; recall: 2/3, 2/3, 1/3, 1, 1 -> 11/15.
    assert b.precision == pytest.approx(11 / 15)
    assert b.recall == pytest.approx(11 / 15)
    assert b.f1 == pytest.approx(11 / 15)
    p = pairwise(gold, pred)
    # gold pairs 3 + 1 = 4, predicted pairs 1 + 3 = 4, both: (1,2) and (4,5).
    assert (p.precision, p.recall, p.f1) == pytest.approx((0.5, 0.5, 0.5))


def test_a_wrong_merge_and_a_wrong_split_score_zero_pairwise_but_not_bcubed():
    gold = {"a": "S", "b": "S", "c": "T"}
    pred = {"a": "x", "b": "y", "c": "y"}
    b = bcubed(gold, pred)
    assert (b.precision, b.recall) == pytest.approx((2 / 3, 2 / 3))
    assert pairwise(gold, pred) == eval_stories.Scores(0.0, 0.0, 0.0)


def test_perfect_and_all_singletons():
    gold = {"a": "S", "b": "S", "c": "T"}
    assert bcubed(gold, gold) == eval_stories.Scores(1.0, 1.0, 1.0)
    assert pairwise(gold, gold) == eval_stories.Scores(1.0, 1.0, 1.0)
    alone = {k: k for k in gold}
    p = pairwise(gold, alone)
    assert (p.precision, p.recall, p.f1) == (1.0, 0.0, 0.0)  # no predicted pair: precision 1 by convention
    assert bcubed(gold, alone).recall == pytest.approx((0.5 + 0.5 + 1) / 3)


def test_pairwise_where_selects_pairs_and_agrees_with_pairwise_on_all():
    gold = {"1": "A", "2": "A", "3": "A", "4": "B", "5": "B"}
    pred = {"1": "x", "2": "x", "3": "y", "4": "y", "5": "y"}
    assert pairwise_where(gold, pred, lambda a, b: True) == pairwise(gold, pred)
    only_b = pairwise_where(gold, pred, lambda a, b: {a, b} <= {"3", "4", "5"})
    assert (only_b.precision, only_b.recall) == pytest.approx((1 / 3, 1.0))


def test_cross_day_merges_count_only_unrelated_items_on_different_days():
    gold = {"a": "S", "b": "S", "c": "T", "d": "U"}
    day = {"a": "d1", "b": "d2", "c": "d2", "d": "d1"}
    pred = {"a": "p", "b": "p", "c": "p", "d": "q"}
    # (a,b) same story; (b,c) same day; (a,c) unrelated and a day apart: one pair in one predicted story.
    assert cross_day_merges(gold, pred, day) == (1, 1)
    assert cross_day_merges(gold, gold, day) == (0, 0)


def _headline(key: str, title: str, hours: float) -> Headline:
    when = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(hours=hours)
    return Headline(key, title, "Outlet", when, "news/x.md", "0" * 64)


def test_title_baseline_links_similar_titles_inside_the_window_only():
    items = [_headline("a", "Maduro appears in Manhattan court", 0),
             _headline("b", "Maduro pleads not guilty in Manhattan court", 5),
             _headline("c", "Lego unveils smart brick", 6),
             _headline("d", "Maduro Manhattan court hearing", 24 * 5)]  # beyond the 3-day window
    story = title_baseline(items, 0.3)
    assert story["a"] == story["b"]
    assert story["c"] not in (story["a"], story["d"])
    assert story["d"] != story["a"]
    assert len(set(title_baseline(items, 1.01).values())) == 4


def test_labels_are_well_formed_and_cover_the_manifest():
    items, labels = _rows("items.csv"), _rows("labels.csv")
    keys = [r["key"] for r in labels]
    assert len(keys) == len(set(keys)) >= 600
    assert set(keys) == {r["key"] for r in items}
    assert all(r["story"].strip() and r["pass"] in ("1=2", "resolved") for r in labels)
    assert len({r["outlet"] for r in labels}) >= 15
    days = {r["day"] for r in labels}
    assert len(days) >= 4
    assert all(len(r["line_sha256"]) == 64 and r["commit"] == stories_corpus.COMMIT for r in items)
    assert all(r["first_seen"][:10] == lab["day"] for r, lab in zip(items, labels, strict=True))
    split = json.loads((DATA / "split.json").read_text())
    assert not set(split["tune"]) & set(split["report"])
    assert set(split["tune"]) | set(split["report"]) == days
    multi_outlet = {s for s in {r["story"] for r in labels}
                    if len({r["outlet"] for r in labels if r["story"] == s}) > 1}
    assert len(multi_outlet) >= 50
    for doc in ("RULES.md", "DISAGREEMENTS.md"):
        assert (DATA / doc).stat().st_size > 1000


_CORPORA = [(stories_corpus, "NEWSFLOW_STORIES_REPO"), (stories_rss_corpus, "NEWSFLOW_STORIES_RSS_REPO")]


@pytest.mark.parametrize(("corpus", "env"), _CORPORA)
def test_a_missing_corpus_is_one_clear_error(tmp_path, monkeypatch, corpus, env):
    monkeypatch.setenv(env, str(tmp_path / "absent"))
    with pytest.raises(CorpusMissingError, match=re.escape(f"git clone --bare https://github.com/{corpus.REPO}")):
        corpus.load_items()


@pytest.mark.parametrize(("corpus", "env"), _CORPORA)
def test_a_different_snapshot_is_detected(tmp_path, monkeypatch, corpus, env):
    empty = tmp_path / "repo"
    empty.mkdir()
    subprocess.run(["git", "init", "-q", "--bare", str(empty)], check=True)
    monkeypatch.setenv(env, str(empty))
    with pytest.raises(CorpusMissingError, match="lacks commit"):
        corpus.load_items()


@pytest.mark.skipif(not stories_corpus.mirror().exists(), reason="the story corpus snapshot is not on this machine")
def test_the_snapshot_matches_the_manifest():
    items = stories_corpus.load_items()
    assert len(items) == len(_rows("items.csv"))
    assert all(h.title and h.outlet for h in items)


def _story_item(key: str, title: str, minutes: int, entities: tuple[str, ...] = ()) -> StoryItem:
    return StoryItem(article_id=key, title=title, text="", published=datetime(2026, 1, 5, tzinfo=UTC)
                     + timedelta(minutes=minutes), outlet=f"outlet-{key}", language="en", entities=entities)


def test_the_embedding_hybrid_without_its_embedding_is_the_clusterer():
    # benchmarks/eval_stories_embedding.py reports a = 0 as "the defaults": that must be the shipped clusterer's
    # stories, item for item.
    import numpy as np

    from benchmarks.eval_stories_embedding import cluster
    from flows.text.stories import StorySettings, cluster_offline

    titles = ["Storm floods the river valley", "River valley floods after storm", "Council approves new budget",
              "Budget approved by the council", "Storm warning for the coast", "Local team wins the final"]
    items = [_story_item(str(i), t, 10 * i, ("Valley",) if "valley" in t.lower() else ())
             for i, t in enumerate(titles)]
    vectors = {i.article_id: np.ones(4, dtype=np.float32) / 2 for i in items}
    want = dict(cluster_offline(items))
    assert cluster(items, StorySettings(), vectors, 0.0, 0.8) == want
    assert len(set(want.values())) < len(items)  # the example does group something


def test_the_embedding_decides_between_candidates_the_blocking_found():
    import numpy as np

    from benchmarks.eval_stories_embedding import cluster
    from flows.text.stories import StorySettings

    # Two headlines that share a name (the blocking's keys) and no other word: with a = 1 only the embedding
    # scores them.
    items = [_story_item("a", "Minister Dupont resigns over leaked memo", 0, ("Dupont",)),
             _story_item("b", "Dupont quits cabinet", 30, ("Dupont",))]
    same = {"a": np.array([1.0, 0.0], dtype=np.float32), "b": np.array([1.0, 0.0], dtype=np.float32)}
    apart = {"a": np.array([1.0, 0.0], dtype=np.float32), "b": np.array([0.0, 1.0], dtype=np.float32)}
    joined = cluster(items, StorySettings(threshold=0.5), same, 1.0, 0.8)
    assert joined["a"] == joined["b"]
    split = cluster(items, StorySettings(threshold=0.5), apart, 1.0, 0.8)
    assert split["a"] != split["b"]


# The second set: news items with summaries from RSS feeds (benchmarks/data/stories_rss/, stories_rss_corpus.py).

def _rss_rows(name: str) -> list[dict[str, str]]:
    with (stories_rss_corpus.DATA / name).open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_rss_labels_are_well_formed_and_cover_the_manifest():
    items, labels = _rss_rows("items.csv"), _rss_rows("labels.csv")
    keys = [r["key"] for r in labels]
    assert 650 <= len(keys) == len(set(keys)) <= 900
    assert keys == [r["key"] for r in items]
    assert all(r["story"].strip() and r["pass"] in ("1=2", "1", "2", "r") for r in labels)
    assert len({r["outlet"] for r in labels}) >= 15
    days = {r["day"] for r in labels}
    assert days == set(stories_rss_corpus.DAYS)
    assert all(sum(r["day"] == d for r in labels) >= 150 for d in days)
    assert all(len(r["link_sha256"]) == len(r["text_sha256"]) == 64 and r["key"] == r["link_sha256"][:16]
               and r["commit"] == stories_rss_corpus.COMMIT for r in items)
    assert all(r["first_seen"][:10] == lab["day"] and r["outlet"] == lab["outlet"]
               for r, lab in zip(items, labels, strict=True))
    split = json.loads((stories_rss_corpus.DATA / "split.json").read_text())
    assert not set(split["tune"]) & set(split["report"])
    assert set(split["tune"]) | set(split["report"]) == days
    for doc in ("RULES.md", "DISAGREEMENTS.md", "README.md"):
        assert (stories_rss_corpus.DATA / doc).stat().st_size > 500


def test_rss_summaries_are_cleaned():
    assert stories_rss_corpus.clean("<p>Tusk&nbsp;sworn <b>in</b>\n as PM</p>") == "Tusk sworn in as PM"


@pytest.mark.skipif(not stories_rss_corpus.mirror().exists(), reason="the RSS story snapshot is not on this machine")
def test_rss_snapshot_matches_the_manifest_and_the_selection_rule():
    items = stories_rss_corpus.load_items()
    assert [i.key for i in items] == [r["key"] for r in _rss_rows("items.csv")]
    assert all(i.title and len(i.summary) >= stories_rss_corpus.MIN_SUMMARY for i in items)
    selected = stories_rss_corpus.select(stories_rss_corpus.candidates())
    assert [i.key for i in selected] == [i.key for i in items]


def test_a_split_warms_up_on_as_many_days_before_it() -> None:
    """The warm start's days: as many as the split holds, ending the day before its first (so the report days warm
    up on the tune days and never on themselves)."""
    assert eval_stories.days_before(["2023-12-13", "2023-12-14"]) == ["2023-12-11", "2023-12-12"]
    assert eval_stories.days_before(["2026-01-06", "2026-01-04", "2026-01-05"]) == [
        "2026-01-01", "2026-01-02", "2026-01-03"]
    split = json.loads((DATA / "split.json").read_text())
    assert eval_stories.days_before(split["report"]) == split["tune"]
