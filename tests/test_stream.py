"""The article stream on the demo snapshot: batches come back in order, complete, tagged, copies untagged."""

from __future__ import annotations

import pytest

from flows import pipeline, stream, warehouse
from flows.settings import Settings


def _entries(settings: Settings) -> list:
    stats = pipeline.RunStats()
    out = pipeline.fetch_feeds(settings, list(settings.feeds), {}, "run-1", stats)
    return pipeline.select_new(settings, out.entries, out.fetch_rows, 100)


def test_batches_arrive_in_order_complete_and_tagged(demo_settings: Settings) -> None:
    warehouse.ensure_ready(demo_settings.warehouse)
    entries = _entries(demo_settings)
    assert len(entries) > 6
    ready = list(stream.articles(demo_settings, pipeline.InlineExecutor(), entries, batch_size=4))

    assert [r.entries for r in ready] == [entries[i:i + 4] for i in range(0, len(entries), 4)]
    assert sum(len(r.pages) for r in ready) == len(entries)
    docs = [d for r in ready for d in r.docs]
    tagged = [d for d in docs if "mentions" in d]
    assert tagged and all(d["ner_pipeline"] for d in tagged)
    # The demo repeats stories verbatim across feeds: the pre-check keeps those copies away from NER.
    hashes = [d["text_hash"] for d in docs]
    copies = [d for i, d in enumerate(docs) if d["text_hash"] in hashes[:i]]
    assert copies and all("mentions" not in d for d in copies)


def test_no_entries_yields_nothing(demo_settings: Settings) -> None:
    assert list(stream.articles(demo_settings, pipeline.InlineExecutor(), [])) == []


def test_a_failing_worker_call_reaches_the_caller(demo_settings: Settings) -> None:
    entries = _entries(demo_settings)
    missing = demo_settings.entities.model_copy(update={"pipeline": "nf_no_such_spacy_pipeline"})
    broken = demo_settings.model_copy(update={"entities": missing})
    with pytest.raises(OSError, match="nf_no_such_spacy_pipeline"):
        list(stream.articles(broken, pipeline.InlineExecutor(), entries, batch_size=4))
