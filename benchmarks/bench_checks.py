"""Cost of the warehouse checks (warehouse/checks/*.sql) on a warehouse of N synthetic articles.

    python -m benchmarks.bench_checks                  # 2,000 articles, writes benchmarks/results/checks.md
    python -m benchmarks.bench_checks --articles 20000 --no-write

Rows are inserted directly, in the proportions a real ingest gives (per article: ~100 sampled shingles, 17 entity
links; a copy for one article in four; 11 feeds fetched every half hour), since the checks read keys and counts
only and never the text. Each check is timed over the same connection `newsflow check` uses, best of 5 rounds,
and `checks.run_and_store` end to end (open read-write, run, store, close) once.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from benchmarks.machine import header, table
from flows.core.settings import WarehouseSettings
from flows.warehouse import checks, database

RESULTS = Path(__file__).parent / "results"
SAMPLES_PER_ARTICLE = 100
ENTITIES_PER_ARTICLE = 17
FEEDS = 11


def fill(conn: duckdb.DuckDBPyConnection, n: int) -> None:
    """A migrated warehouse holding `n` articles and what comes with them."""
    database.migrate(conn)
    runs = max(1, n // 20)  # ~20 new articles per half-hourly run
    conn.execute("""
        insert into runs (run_id, flow, started_at, finished_at, status, checks_failed)
        select 'run-' || i, 'ingest', now() - to_minutes(30 * ($runs - i)), now() - to_minutes(30 * ($runs - i) - 1),
               'completed', 0
        from range($runs) t(i)""", {"runs": runs})
    conn.execute("""
        insert into feeds (feed, url, configured_url, consecutive_failures, disabled)
        select 'feed-' || i, 'http://127.0.0.1/f' || i, 'http://127.0.0.1/f' || i, 0, false from range($feeds) t(i)""",
                 {"feeds": FEEDS})
    conn.execute("""
        insert into feed_fetches (fetch_id, run_id, feed, url, outcome, fetched_at)
        select 'run-' || r || ':feed-' || f, 'run-' || r, 'feed-' || f, 'http://127.0.0.1/f' || f,
               case when f = 0 then 'skipped' else 'ok' end, now()
        from range($runs) a(r), range($feeds) b(f)""", {"runs": runs, "feeds": FEEDS})
    conn.execute("""
        insert into articles (article_id, url, feed, title, text, text_hash, is_seed, body_source, ner_pipeline,
                              n_shingles, n_samples, run_id, loaded_at)
        select i, 'http://127.0.0.1/a/' || i, 'feed-' || (i % $feeds), 'title ' || i, repeat('word ', 600),
               md5(i::varchar), false, 'extracted', 'en_core_web_sm-3.8.0', 800, $samples, 'run-' || (i % $runs),
               now()
        from range($n) t(i)""", {"n": n, "feeds": FEEDS, "samples": SAMPLES_PER_ARTICLE, "runs": runs})
    conn.execute("""
        insert into duplicates (url, feed, duplicate_of, method, criterion, similarity, seen_at, run_id)
        select 'http://127.0.0.1/copy/' || i, 'feed-1', i, 'near', 'jaccard', 0.9, now(), 'run-0'
        from range(0, $n, 4) t(i)""", {"n": n})
    n_entities = max(1, n * 5)
    conn.execute("""
        insert into entities (entity_id, name, label, first_seen_at)
        select i, 'entity ' || i, 'ORG', now() from range($m) t(i)""", {"m": n_entities})
    conn.execute("""
        insert into article_entities (article_id, entity_id, mentions)
        select a, (a * 7919 + k * 104729) % $m, 1 from range($n) x(a), range($k) y(k)
        on conflict do nothing""", {"n": n, "k": ENTITIES_PER_ARTICLE, "m": n_entities})
    conn.execute("""
        insert into shingle_samples (hash, article_id)
        select (hash(a, k) >> 1)::bigint, a from range($n) x(a), range($s) y(k)""", {"n": n, "s": SAMPLES_PER_ARTICLE})
    conn.execute("checkpoint")


def run(n: int, rounds: int = 5) -> tuple[dict[str, float], float, dict[str, int]]:
    """Best-of-`rounds` ms per check, end-to-end ms of run_and_store, and row counts."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        settings = WarehouseSettings(path=path, staging_dir=Path(tmp) / "bench.staging",
                                     snapshot_path=Path(tmp) / "bench.snapshot.duckdb")
        with duckdb.connect(str(path)) as conn:
            fill(conn, n)
            sizes = {t: conn.execute(f"select count(*) from {t}").fetchone()[0]
                     for t in ("articles", "duplicates", "article_entities", "shingle_samples", "feed_fetches")}
        times: dict[str, list[float]] = {}
        with duckdb.connect(str(path), read_only=True) as conn:
            for _ in range(rounds):
                for r in checks.run_checks(conn, staging_dir=settings.staging_dir):
                    assert r.offending_rows == 0, r  # a clean warehouse: the cost of checks that hold
                    times.setdefault(r.name, []).append(r.duration_ms)
        start = time.perf_counter()
        done = checks.run_and_store(settings, checks.new_check_id(), alive_runs=[])
        end_to_end = (time.perf_counter() - start) * 1000
        assert not done.failed
    return {k: min(v) for k, v in times.items()}, end_to_end, sizes


def report(n: int, per_check: dict[str, float], end_to_end: float, sizes: dict[str, int]) -> str:
    rows = [[name, f"{ms:.1f}"] for name, ms in sorted(per_check.items(), key=lambda kv: -kv[1])]
    rows.append(["**all checks (sum)**", f"**{sum(per_check.values()):.1f}**"])
    rows.append(["open read-write + all checks + store + close (`checks.run_and_store`)", f"{end_to_end:.1f}"])
    return (header(f"Warehouse checks at {n:,} articles") + "\n"
            f"`python -m benchmarks.bench_checks --articles {n}`; rows: "
            + ", ".join(f"{t} {c:,}" for t, c in sizes.items())
            + ". Best of 5 rounds per check, on a clean warehouse (every check holds).\n\n"
            + table(["check", "ms"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results/checks.md")
    args = parser.parse_args()
    text = report(args.articles, *run(args.articles))
    print(text)
    if not args.no_write:
        (RESULTS / "checks.md").write_text(text)


if __name__ == "__main__":
    main()
