"""The ingest pipeline, stage by stage, as plain functions (flows/flow.py wraps them as Prefect tasks).

    reads      what the warehouse already knows: feed states, stored URLs and seeds (hints, lock-tolerant)
    collect    feeds  -> entries: fetch and parse the due feeds, pick the new entries
    pages      entries -> pages: download the article pages politely (politeness: per-host bound, robots.txt)
    documents  pages -> documents: extract, sign for dedup, tag entities (in worker processes, workers)
    store      documents -> warehouse: stage each batch durably, load it in one transaction (load, staging)
    stream     overlaps pages, documents and store across batches so no core waits

Each stage only calls the stages below it. This module only gathers their names for callers that want one
import.
"""

from __future__ import annotations

from flows.collect import FeedsOutcome, entry_rows, fetch_feeds, select_new
from flows.documents import build_doc, build_docs, seed_doc, tag_documents, tag_texts
from flows.feeds import entry_url
from flows.pages import download
from flows.politeness import HostGate
from flows.reads import known_urls, mark_abandoned, read_feed_states, seeds_to_load, start_run, stored_seed_hashes
from flows.stats import RunStats
from flows.store import load_pending, load_staged, precheck, store
from flows.workers import InlineExecutor, chunks, make_pool, warm_up

__all__ = [
    "FeedsOutcome", "HostGate", "InlineExecutor", "RunStats", "build_doc", "build_docs", "chunks",
    "download", "entry_rows", "entry_url", "fetch_feeds", "known_urls", "load_pending", "load_staged", "make_pool",
    "mark_abandoned", "precheck", "read_feed_states", "seed_doc", "seeds_to_load", "select_new", "start_run",
    "store", "stored_seed_hashes", "tag_documents", "tag_texts", "warm_up",
]
