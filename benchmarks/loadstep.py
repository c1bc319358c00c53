"""Loads of a batch of new articles into a year-sized warehouse, timed in-process (issue 23: a run's load at 1M
within 1.5x of its cost on a small warehouse), the way a file's loader inserts its articles now and before,
interleaved on one connection:

    python -m benchmarks.loadstep WAREHOUSE [--rounds 3]

`new`: load_batch (articles skip on their id's index, `on conflict (article_id) do nothing`); `before`: the same
load with every key checked by anti-joins (what load_batch fell back to, and what every load did up to
2026-12-07). The only difference between the two is that insert. Each load: 128 articles of random words (new to
the warehouse and to each other), 20 entity mentions each, their entries and page fetches, as a run's document
batch holds them; each commits (the copy grows by 128 articles a load). Printed: each load's wall time and the
1-minute load average, then the medians. Not timed: the connection's close (a checkpoint), a
lookup cache refresh or a checkpoint (none runs).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from flows.core.records import Document
from flows.core.sections import DedupSettings, StoriesSettings
from flows.core.settings import WarehouseSettings
from flows.run.documents import signature_fields
from flows.warehouse import database, writer
from flows.warehouse.staging import Batch

ARTICLES = 128


def batch(tag: str, dedup: DedupSettings) -> Batch:
    rng = random.Random(tag)
    words = [f"w{rng.randrange(10**9)}" for _ in range(4000)]
    now = datetime.now(UTC)
    docs = []
    for i in range(ARTICLES):
        text = " ".join(rng.choice(words) for _ in range(400))
        docs.append(Document(url=f"https://load.example/{tag}/{i}", text=text, body_source="extracted",
                             feed=f"f{i % 100:03d}", entry_guid=f"{tag}-{i}", published_at=now, fetched_at=now,
                             ner_pipeline="loadstep", title=f"Article {tag} {i}",
                             mentions=[{"name": f"Name {rng.randrange(5000)}", "label": "PERSON", "mentions": 1}
                                       for _ in range(20)],
                             **signature_fields(text, dedup)))
    b = Batch(f"{now:%Y%m%dT%H%M%S}-{tag}-0001", tag)
    b.add("docs", *docs)
    b.add("entries", *[{"feed": d.feed, "guid": d.entry_guid, "url": d.url, "first_seen_at": now,
                        "first_run_id": tag} for d in docs])
    b.add("page_fetches", *[{"url": d.url, "run_id": tag, "outcome": "extracted", "fetched_at": now}
                            for d in docs])
    return b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("warehouse")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    # No lookup cache refresh inside the timed loads (one every 512 articles otherwise: seconds to a minute here,
    # the same for both ways, and not what is compared).
    dedup = DedupSettings(cache_refresh_articles=10**9)
    path = Path(args.warehouse)
    settings = WarehouseSettings(path=path, staging_dir=path.parent / "staging")
    took: dict[str, list[float]] = {"new": [], "before": []}
    with database.connect(settings) as conn:
        # Nor a checkpoint: one falls due every few loads (16 MB of log) and took 40-65 s at 100k on this machine.
        conn.execute("set checkpoint_threshold = '100GB'")
        for rnd in range(args.rounds):
            for way in (("new", "before") if rnd % 2 == 0 else ("before", "new")):
                b = batch(f"ls{time.time_ns()}", dedup)
                start = time.perf_counter()
                result = writer._load_retrying(conn, b, dedup, raw_dir=None, attempts=1,
                                               stories=StoriesSettings(), on_primary=way == "new")
                took[way].append(time.perf_counter() - start)
                assert result.new == ARTICLES, result
                print(f"{path.parent.name} round {rnd + 1} {way}: load {took[way][-1] * 1000:.0f} ms, "
                      f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for way, xs in took.items():
        print(f"{path.parent.name} {way}: median {statistics.median(xs) * 1000:.0f} ms "
              f"({' / '.join(f'{x * 1000:.0f}' for x in xs)})")


if __name__ == "__main__":
    main()
