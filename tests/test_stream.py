"""The article stream on the demo snapshot: batches come back in order, complete, tagged, copies untagged.

Covers: flows.run.stream
"""

from __future__ import annotations

from pathlib import Path

from flows.core import stats
from flows.core.records import Document
from flows.core.settings import Settings
from flows.core.urls import host_of, interleave_hosts
from flows.feeds.parse import FeedEntry
from flows.ops.localserver import LocalServer
from flows.run import collect, stream, workers
from flows.warehouse import database
from flows.warehouse.store import COPY_REASON


def _entries(settings: Settings) -> list:
    run_stats = stats.RunStats()
    out = collect.fetch_feeds(settings, list(settings.feeds), {}, "run-1", run_stats)
    return collect.select_new(settings, out.entries, out.fetch_rows, 100)


def test_batches_arrive_in_order_complete_and_tagged(demo_settings: Settings) -> None:
    database.ensure_ready(demo_settings.warehouse)
    entries = _entries(demo_settings)
    assert len(entries) > 6
    ready = list(stream.articles(demo_settings, workers.InlineExecutor(), entries, batch_size=4))

    mixed = interleave_hosts(entries)
    assert [r.entries for r in ready] == [mixed[i:i + 4] for i in range(0, len(mixed), 4)]
    assert sum(len(r.pages) for r in ready) == len(entries)
    docs = [d for r in ready for d in r.docs]
    tagged = [d for d in docs if d.ner_pipeline]
    assert tagged and all(d.mentions for d in tagged)
    # Every document is tagged or says why not.
    assert all(d.ner_pipeline or d.ner_skip_reason for d in docs)
    # The demo repeats stories verbatim across feeds: the pre-check keeps all but at most one of each away from
    # NER (none when that text is itself a near copy of another story).
    groups: dict[str, list[Document]] = {}
    for d in docs:
        groups.setdefault(d.text_hash, []).append(d)
    repeated = [g for g in groups.values() if len(g) > 1]
    assert repeated and any(d.ner_skip_reason == COPY_REASON for g in repeated for d in g)
    for group in repeated:
        assert sum(1 for d in group if d.ner_pipeline) <= 1
        assert all(d.ner_skip_reason == COPY_REASON for d in group if not d.ner_pipeline)


def test_no_entries_yields_nothing(demo_settings: Settings) -> None:
    assert list(stream.articles(demo_settings, workers.InlineExecutor(), [])) == []


def test_a_tagger_that_fails_leaves_every_document_with_the_reason(demo_settings: Settings) -> None:
    """NER failing in a worker (here: its pipeline cannot load) costs the entities, never the documents."""
    entries = _entries(demo_settings)
    missing = demo_settings.entities.model_copy(update={"pipelines": {"en": "nf_no_such_spacy_pipeline"}})
    broken = demo_settings.model_copy(update={"entities": missing})
    ready = list(stream.articles(broken, workers.InlineExecutor(), entries, batch_size=4))
    docs = [d for r in ready for d in r.docs]
    assert len(docs) == len([p for r in ready for p in r.pages if p["outcome"] != "failed"])
    untagged = [d for d in docs if d.ner_skip_reason != COPY_REASON]
    assert untagged and all(d.ner_pipeline is None and d.mentions == [] for d in untagged)
    # The English ones went to the broken pipeline (the demo's French write-up keeps its own reason).
    english = [d for d in untagged if d.language != "fr"]
    assert english and all(d.ner_skip_reason.startswith("internal_error: OSError") and "nf_no_such_spacy_pipeline"
                           in d.ner_skip_reason for d in english)


def _three_host_entries(servers: list[LocalServer]) -> list[FeedEntry]:
    """10 entries per host, in feed order: all of the first host's, then the second's, then the third's."""
    entries = []
    for h, server in enumerate(servers):
        for n in range(10):
            url = server.url(f"/h{h}-{n}.html")
            entries.append(FeedEntry(f"feed-{h}", url, url, f"Story {h}-{n}", None, None, None))
    return entries


def test_batches_mix_hosts(demo_settings: Settings, tmp_path: Path) -> None:
    """A run over 3 hosts x 10 entries in feed order: the first batch already holds entries of all three."""
    database.ensure_ready(demo_settings.warehouse)
    site = tmp_path / "site"
    site.mkdir()
    for h in range(3):
        for n in range(10):
            (site / f"h{h}-{n}.html").write_text(
                f"<html><body><article><h1>Story {h}-{n}</h1><p>{f'Words of story {h}-{n}. ' * 40}</p>"
                "</article></body></html>")
    # Untagged (no spaCy load) keeps the test fast; tagging is covered above.
    missing = demo_settings.entities.model_copy(update={"pipelines": {"en": "nf_no_such_spacy_pipeline"}})
    settings = demo_settings.model_copy(update={"entities": missing})
    with LocalServer(site) as one, LocalServer(site, host="127.0.0.2") as two, \
            LocalServer(site, host="127.0.0.3") as three:
        entries = _three_host_entries([one, two, three])
        ready = list(stream.articles(settings, workers.InlineExecutor(), entries, batch_size=10))
        again = list(stream.articles(settings, workers.InlineExecutor(), entries, batch_size=10))

    assert [len(r.entries) for r in ready] == [10, 10, 10]
    assert {host_of(e.url) for e in ready[0].entries} == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}
    assert all(len({host_of(e.url) for e in r.entries}) == 3 for r in ready)
    # Every entry once, each page downloaded, and the same cut on a second pass (deterministic).
    assert sorted(e.guid for r in ready for e in r.entries) == sorted(e.guid for e in entries)
    assert all(p["outcome"] == "extracted" for r in ready for p in r.pages)
    assert [r.entries for r in again] == [r.entries for r in ready]
