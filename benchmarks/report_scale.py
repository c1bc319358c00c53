"""`newsflow report` on warehouses in a year's shape: render time, each report query and peak memory.

    python -m benchmarks.report_scale fill DB ARTICLES   # a warehouse in a year's shape, filled set-wise
    python -m benchmarks.report_scale time DB            # render once, then each query once; peak RSS
    python -m benchmarks.report_scale pages DB [N]       # the page as a run writes it (open, render, close), N times

The fill writes what the report reads, in the proportions of 100 feeds polled every 15 minutes (issue 23): about
2,740 articles a day (1M fill a year, 100k the last 37 days, 3,000 the last day), 20 entity links each (a few
thousand popular entities and a long tail), copies for 30% of them, one run per 30 articles with 100 feed fetches
and 10 check results each. Filled set-wise, so the report's aggregates are computed once afterwards, as migration
0011 would (skipped by a tree without them, which is how the figures before the aggregates were taken). One run
each: the machine is shared.
"""

from __future__ import annotations

import importlib
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from flows.core.settings import WarehouseSettings
from flows.warehouse import database, reportpage

END = "timestamptz '2026-12-01 12:00:00+00'"
FILL = f"""
insert into articles (article_id, url, feed, entry_guid, title, published_at, published_source, fetched_at, text,
                      text_hash, is_seed, body_source, http_status, extractor, extractor_version, ner_pipeline,
                      n_shingles, n_samples, run_id, loaded_at, access, is_teaser, is_consent_page)
select i, 'https://fill.example/' || i, 'feed' || (i % 100), 'g' || i, 'title ' || i,
       {END} - to_minutes((i * 525600 // 1000000)::bigint), 'feed', {END} - to_minutes((i * 525600 // 1000000)::bigint),
       'text ' || i, md5(i::varchar), false, case when i % 20 = 0 then 'feed_summary' else 'extracted' end, 200,
       'trafilatura', '2', 'bench', 450, 56, 'run' || (i // 30), now(),
       case when i % 9 = 0 then 'paywalled' else 'free' end, i % 13 = 0, i % 101 = 0
from range($n) t(i);
insert into entities select e, 'Entity ' || e, case e % 3 when 0 then 'ORG' when 1 then 'PERSON' else 'GPE' end, now()
from range(greatest(3000, $n // 5)) t(e);
insert into article_entities
select i, (case when k < 6 then hash(i * 7 + k) % 3000 else hash(i * 7 + k) % greatest(3000, $n // 5) end)::bigint
       as e, min(1 + k % 3)
from range($n) t(i), range(20) u(k) group by all;
insert into duplicates select 'https://copy.example/' || i, 'feed' || (i % 97), 'c' || i, 'copy ' || i,
       (hash(i) % ($n // 10))::bigint, case when i % 3 = 0 then 'exact' else 'near' end, 'jaccard', 0.9, 0.9, 0.9,
       md5(i::varchar), {END} - to_minutes((i * 525600 // 300000)::bigint), 'run' || (i // 9)
from range($n * 3 // 10) t(i);
insert into runs (run_id, flow, started_at, finished_at, status, articles_new)
select 'run' || r, 'ingest', {END} - to_minutes((($n // 30 - r) * 15)::bigint),
       {END} - to_minutes((($n // 30 - r) * 15)::bigint) + interval 40 second, 'completed', 30
from range($n // 30 + 1) t(r);
insert into feeds (feed, url, configured_url, last_fetch_at, last_success_at)
select 'feed' || f, 'https://fill.example/feed' || f, 'https://fill.example/feed' || f, {END}, {END}
from range(100) t(f);
insert into feed_fetches (fetch_id, run_id, feed, url, outcome, fetched_at, http_status)
select 'run' || r || ':feed' || f, 'run' || r, 'feed' || f, 'https://fill.example/feed' || f,
       case when f % 4 = 0 then 'ok' else 'not_modified' end, {END} - to_minutes((($n // 30 - r) * 15)::bigint), 200
from range($n // 30 + 1) t(r), range(100) u(f);
insert into check_results (run_id, check_name, offending_rows, sample, duration_ms, checked_at)
select 'run' || r, 'check' || c, case when r % 500 = 0 and c = 0 then 1 else 0 end, '[]', 1.0,
       {END} - to_minutes((($n // 30 - r) * 15)::bigint) + interval 30 second
from range($n // 30 + 1) t(r), range(10) u(c);
"""
QUERIES = {"report_surges": {"limit": 15, "min_mentions": 2}, "report_top_entities": {"limit": 15},
           "report_feed_days": {"days": 30}, "report_syndication": {"limit": 15, "ranked": 60},
           "report_quality": {"limit": 30},
           "report_totals": None, "report_runs": {"limit": 20}, "report_checks": {"limit": 20},
           "report_feed_health": None}


def fill(db: Path, articles: int) -> None:
    settings = WarehouseSettings(path=db)
    database.ensure_ready(settings)
    with database.connect(settings) as conn:
        for statement in FILL.strip().split(";\n"):
            conn.execute(statement, {"n": articles} if "$n" in statement else None)
        try:
            aggregates = importlib.import_module("flows.warehouse.aggregates")
        except ImportError:
            aggregates = None
        if aggregates is not None:
            started = time.perf_counter()
            with database.transaction(conn):
                aggregates.rebuild_aggregates(conn)
            print(f"aggregates rebuilt in {time.perf_counter() - started:.1f} s")
        conn.execute("checkpoint")


def timed(db: Path) -> None:
    with duckdb.connect(str(db), read_only=True) as conn:
        started = time.perf_counter()
        reportpage.render(conn, generated_at=datetime.now(UTC))
        render_s = time.perf_counter() - started
        each = {}
        for name, params in QUERIES.items():
            started = time.perf_counter()
            conn.execute(database.query(name), params).fetchall()
            each[name] = round(time.perf_counter() - started, 3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"render {render_s:.2f} s, peak RSS {peak} MiB; each query once after it: {each}")


def pages(db: Path, times: int) -> None:
    """`reportpage.write` as a run's end calls it, each a new read-only connection (the first is cold)."""
    settings = WarehouseSettings(path=db, snapshot=False)
    with tempfile.TemporaryDirectory() as tmp:
        walls = []
        for _ in range(times):
            started = time.perf_counter()
            reportpage.write(settings, Path(tmp) / "report.html")
            walls.append(round((time.perf_counter() - started) * 1000))
    print(f"report page written {times} times, ms each: {walls} (median {statistics.median(walls):.0f})")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "fill":
        fill(Path(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "time":
        timed(Path(sys.argv[2]))
    elif len(sys.argv) in (3, 4) and sys.argv[1] == "pages":
        pages(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) == 4 else 5)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
