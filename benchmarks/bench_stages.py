"""Stage breakdown: each stage of the ingest timed on its own, one process, over a sample of the benchmark site."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import site
from benchmarks.bench_ingest import write_config
from flows.core.settings import load_settings
from flows.feeds.parse import FeedEntry
from flows.run import documents, workers
from flows.text import dedup, entities, extract
from flows.warehouse import database, staging, store


@dataclass
class Stages:
    pages: int
    ms: dict[str, float]  # per article


def run(*, pages: int = 64) -> Stages:
    with tempfile.TemporaryDirectory(prefix="newsflow-stages-") as tmp_name:
        tmp = Path(tmp_name)
        s = site.build(tmp / "site", variants=1, feeds=1)
        names = sorted(p.name for p in (s.root / "pages").glob("*.html"))[:pages]
        with site.Server(s.root) as server:
            settings = load_settings(write_config(tmp, server.base, s.feeds), env={})
            database.ensure_ready(settings.warehouse)
            entries = [FeedEntry("bench", n, f"{server.base}/pages/{n}", n, "summary", None, None) for n in names]
            t: dict[str, float] = {}
            start = time.perf_counter()
            fetched = list(pages.download(settings, entries))
            t["fetch (8 threads, loopback)"] = time.perf_counter() - start
        start = time.perf_counter()
        found = [extract.extract(r.body or b"", r.final_url, settings.extract) for _, r in fetched if r]
        t["extract"] = time.perf_counter() - start
        texts = [f.text for f in found if f]
        start = time.perf_counter()
        docs = [documents.build_doc(e, r, settings)[0] for e, r in fetched]  # extract + signature
        t["extract + signature (build_doc)"] = time.perf_counter() - start
        docs = [d for d in docs if d]
        start = time.perf_counter()
        for text in texts:
            dedup.signature(text, settings.dedup)
        t["dedup: signature"] = time.perf_counter() - start
        start = time.perf_counter()
        store.precheck(settings, docs)
        t["dedup: warehouse pre-check"] = time.perf_counter() - start
        nlp = entities.load_pipeline(settings.entities.pipeline)
        entities.tag(nlp, texts[:2], settings.entities.labels, settings.entities.max_chars)
        start = time.perf_counter()
        documents.tag_documents(workers.InlineExecutor(), docs, settings)
        t["NER"] = time.perf_counter() - start
        batch = staging.Batch("stages-0001", "bench")
        batch.add("page_fetches", *(dict(documents.build_doc(e, r, settings)[1], run_id="bench") for e, r in fetched))
        batch.add("docs", *docs)
        start = time.perf_counter()
        path = staging.write(batch, settings.warehouse.staging_dir)
        t["load: stage Parquet"] = time.perf_counter() - start
        start = time.perf_counter()
        store.load_staged(settings, path)
        t["load: into DuckDB"] = time.perf_counter() - start
    return Stages(len(fetched), {k: v / len(fetched) * 1000 for k, v in t.items()})
