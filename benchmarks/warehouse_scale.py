"""What staging and the snapshot cost at warehouse scale (synthetic, 100k articles by default).

    python -m benchmarks.warehouse_scale                     # 100k articles, writes results/warehouse_scale.md
    python -m benchmarks.warehouse_scale --articles 20000    # a quicker look

Measures, on one machine:
1. staging: writing every batch of `batch_size` documents as Parquet (fsynced, as runs do, and without fsync
   for comparison), per batch and for the whole 100k;
2. loading one more batch into the full warehouse (`load_batch`: dedup decision + inserts, one transaction);
3. publishing the read-only snapshot of the full warehouse (checkpoint, copy, fsync, atomic rename).

The warehouse is filled set-wise in SQL with the row shapes a run writes (32 LSH buckets, ~1-in-8 shingle
samples, ~12 entities and a zlib-sized raw page per article, the pages in Parquet archives beside the file);
staged documents carry real dedup signatures of synthetic texts. Nothing touches the network.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.machine import header, table
from flows.core.records import Document
from flows.core.sections import DedupSettings
from flows.core.settings import WarehouseSettings
from flows.text import dedup
from flows.warehouse import aggregates, archive, database, snapshot, staging
from flows.warehouse.writer import load_batch

RESULTS = Path(__file__).parent / "results"
_RNG = np.random.default_rng(7)
_VOCAB = np.array([f"w{i}" for i in range(20_000)])


def synthetic_text(words: int = 450) -> str:
    return " ".join(_RNG.choice(_VOCAB, size=words))


def make_docs(n: int, settings: DedupSettings, raw_kb: int) -> list[Document]:
    """`n` documents shaped like the ones a run stages (text, signature, mentions, raw HTML)."""
    now = datetime.now(UTC)
    docs = []
    for i in range(n):
        text = synthetic_text()
        sig = dedup.signature(text, settings)
        raw = zlib.compress(_RNG.bytes(raw_kb * 1024), 1) if raw_kb else None
        docs.append(Document(**{
            "url": f"https://bench.example/{i}", "feed": f"feed{i % 40}", "entry_guid": f"g{i}", "title": text[:80],
            "author": None, "published_at": now, "published_source": "feed", "fetched_at": now, "language": "en",
            "site_name": "bench", "canonical_url": None, "final_url": f"https://bench.example/{i}",
            "http_status": 200, "text": text, "body_source": "extracted", "fallback_reason": None,
            "is_seed": False, "seed_file": None, "seed_file_hash": None, "extractor": "trafilatura",
            "extractor_version": "2", "extractor_options": "{}", "raw_html": raw, "ner_pipeline": "bench",
            "text_hash": sig.text_hash, "shingles": sig.shingles.view("int64").tolist(),
            "buckets": sig.buckets.tolist(), "samples": sig.samples.tolist(),
            "mentions": [{"name": f"Entity {j}", "label": "ORG", "mentions": 2} for j in _RNG.integers(0, 50_000, 12)],
        }))
    return docs


def bench_staging(docs: list[Document], articles: int, batch_size: int, root: Path, durable: bool
                  ) -> dict[str, float]:
    """Stage `articles` documents in batches (the pool of docs is cycled with fresh URLs)."""
    out = root / ("durable" if durable else "plain")
    times = []
    total_bytes = 0
    for b in range(-(-articles // batch_size)):
        rows = []
        for k in range(min(batch_size, articles - b * batch_size)):
            doc = replace(docs[(b * batch_size + k) % len(docs)], url=f"https://bench.example/{b}/{k}")
            rows.append(doc)
        batch = staging.Batch(f"bench-{b:06d}", "bench")
        batch.add("docs", *rows)
        batch.add("page_fetches", *[{"url": d.url, "outcome": "extracted"} for d in rows])
        t = time.perf_counter()
        path = staging.write(batch, out, durable=durable)
        times.append(time.perf_counter() - t)
        total_bytes += sum(f.stat().st_size for f in path.iterdir())
    shutil.rmtree(out)
    return {"batches": len(times), "total_s": sum(times), "median_ms": statistics.median(times) * 1000,
            "p95_ms": sorted(times)[int(len(times) * 0.95)] * 1000, "mb": total_bytes / 2**20}


FILL = """
insert into articles (article_id, url, feed, entry_guid, title, published_at, published_source, fetched_at, text,
                      text_hash, is_seed, body_source, http_status, extractor, extractor_version, ner_pipeline,
                      n_shingles, n_samples, run_id, loaded_at)
select i, 'https://fill.example/' || i, 'feed' || (i % 40), 'g' || i, 'title ' || i,
       now() - to_days((i % 365)::integer), 'feed', now(),
       array_to_string(list_transform(range(450), lambda x: 'w' || (hash(i * 1000 + x) % 20000)), ' '), md5(i::varchar),
       false, 'extracted', 200, 'trafilatura', '2', 'bench', 450, 56, 'fill', now()
from range($n) t(i);
insert into entries (feed, guid, url, title, published_at, first_seen_at, first_run_id)
select 'feed' || (i % 40), 'g' || i, 'https://fill.example/' || i, 'title ' || i, now(), now(), 'fill'
from range($n) t(i);
insert into page_fetches (url, feed, run_id, http_status, outcome, fetched_at)
select 'https://fill.example/' || i, 'feed' || (i % 40), 'fill', 200, 'extracted', now() from range($n) t(i);
insert into lsh_buckets
select (((hash(i * 131 + b) >> 1)::bigint >> 9) << 9) | b, i, 1 from range($n) t(i), range(32) u(b);
insert into shingle_samples select (hash(i * 977 + s) >> 1)::bigint, i, 1 from range($n) t(i), range(56) u(s);
insert into entities select e, 'Entity ' || e, 'ORG', now() from range(50000) t(e);
insert into article_entities select distinct i, (hash(i * 7 + k) % 50000)::bigint, 2
from range($n) t(i), range(12) u(k);
"""


def fill(settings: WarehouseSettings, articles: int, raw_kb: int) -> None:
    database.ensure_ready(settings)
    with database.connect(settings) as conn:
        for statement in FILL.strip().split(";\n"):
            conn.execute(statement, {"n": articles} if "$n" in statement else None)
        # Filled set-wise, not through the loader: the report's aggregates are computed once, as a migration would.
        aggregates.rebuild_aggregates(conn)
        if raw_kb:
            # Compressed pages are incompressible bytes, each different (DuckDB would fold identical ones).
            now = datetime.now(UTC)
            # They go to Parquet archives beside the file, as loads write them (flows/warehouse/archive.py).
            for start in range(0, articles, 5000):
                ids = range(start, min(articles, start + 5000))
                rows = [{"url": f"https://fill.example/{i}", "fetched_at": now, "encoding": "zlib",
                         "html": _RNG.bytes(raw_kb * 1024)} for i in ids]
                rel = archive.write_archive(settings.raw_dir, f"fill-{start:07d}", now.date(), rows)
                conn.register("raw_chunk", pa.table({
                    "url": [r["url"] for r in rows], "fetched_at": [now] * len(rows),
                    "archive_file": [rel] * len(rows), "bytes": [raw_kb * 1024] * len(rows),
                }))
                conn.execute("insert into raw_archive by name select * from raw_chunk")
                conn.unregister("raw_chunk")
        conn.execute("checkpoint")


def run(articles: int, batch_size: int, raw_kb: int) -> str:
    dedup_settings = DedupSettings()
    with tempfile.TemporaryDirectory(prefix="newsflow-bench-") as tmp:
        root = Path(tmp)
        docs = make_docs(4 * batch_size, dedup_settings, raw_kb)
        durable = bench_staging(docs, articles, batch_size, root / "staging", durable=True)
        plain = bench_staging(docs, articles, batch_size, root / "staging", durable=False)

        settings = WarehouseSettings(path=root / "wh.duckdb", staging_dir=root / "staged",
                                     snapshot_path=root / "snap" / "wh.duckdb")
        t = time.perf_counter()
        fill(settings, articles, raw_kb)
        fill_s = time.perf_counter() - t
        size_mb = settings.path.stat().st_size / 2**20

        loads = []
        for n in range(3):  # each a new batch of new articles, read from staging, in its own connection
            batch = staging.Batch(f"bench-load-{n}", "bench")
            batch.add("docs", *[replace(d, url=f"https://load.example/{n}/{i}")
                                for i, d in enumerate(docs[n * batch_size:(n + 1) * batch_size])])
            path = staging.write(batch, settings.staging_dir)
            t = time.perf_counter()
            with database.connect(settings) as conn:
                result = load_batch(conn, staging.read(path), dedup_settings, raw_dir=settings.raw_dir)
            loads.append(time.perf_counter() - t)

        snaps = []
        for _ in range(3):
            t = time.perf_counter()
            snapshot.publish_snapshot(settings)
            snaps.append(time.perf_counter() - t)

    rows = [
        ["stage one batch (fsync)", f"{durable['median_ms']:.1f} ms median, {durable['p95_ms']:.1f} ms p95",
         f"{batch_size} articles, {durable['mb'] / durable['batches']:.2f} MB per batch"],
        [f"stage {articles:,} articles (fsync)", f"{durable['total_s']:.1f} s",
         f"{durable['batches']} batches, {durable['total_s'] / articles * 1000:.2f} ms per article, "
         f"{durable['mb']:.0f} MB"],
        [f"stage {articles:,} articles (no fsync)", f"{plain['total_s']:.1f} s",
         f"fsync share {1 - plain['total_s'] / durable['total_s']:.0%}"],
        [f"load one batch into a {articles:,}-article warehouse", f"{statistics.median(loads):.2f} s median",
         f"runs: {', '.join(f'{s:.2f}' for s in loads)} s (first after opening the file is cold); "
         f"{result.new} new, dedup decision included"],
        [f"publish snapshot of a {articles:,}-article warehouse", f"{statistics.median(snaps):.2f} s median",
         f"runs: {', '.join(f'{s:.2f}' for s in snaps)} s; file {size_mb:.0f} MB"],
        ["(fill the synthetic warehouse)", f"{fill_s:.1f} s", "set-wise SQL, not a run"],
    ]
    return (header("Warehouse at scale: staging and snapshot cost") + "\n"
            f"Synthetic warehouse of {articles:,} articles (32 LSH buckets, 56 shingle samples, 12 entity links "
            f"and a {raw_kb} KB compressed raw page each); staged documents of ~450 words with real signatures.\n"
            "Command: `.venv/bin/python -m benchmarks.warehouse_scale"
            f"{'' if articles == 100_000 else f' --articles {articles}'}`\n\n"
            + table(["step", "time", "notes"], rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--raw-kb", type=int, default=12, help="compressed raw HTML per article (0: none)")
    args = parser.parse_args()
    report = run(args.articles, args.batch_size, args.raw_kb)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "warehouse_scale.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
