"""A warehouse in the shape of a year of unattended runs, filled set-wise in SQL (benchmarks/bench_year.py).

The shape (issue 23): 100 feeds polled every 15 minutes (96 runs a day), ~3,000 articles a day, so N articles span
N / 3,000 days; per article ~4 KB of English text (four ~1 KB pieces of the fundus corpus bodies, so it compresses
like prose), ~20 entity links (skewed: a few names are everywhere), 32 LSH bucket keys and ~48 sampled shingles in
the dedup index with the load sequence number of the run that loaded it; ~10% syndicated copies in `duplicates`;
an `entries` and a `page_fetches` row per URL; per run a `runs` row, 100 `feed_fetches` and one `check_results` row
per check file; raw pages (incompressible bytes, `raw_kb` each) in Parquet archives beside the file for the last
`raw_html_retention_days` days only, as retention leaves them. The schema comes from the project's own
`database.ensure_ready` (every migration, whatever later ones add) and the fill then calls
`flows.warehouse.aggregates.rebuild_aggregates(conn)` when that exists.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flows.core.sections import DedupSettings
from flows.core.settings import WarehouseSettings
from flows.warehouse import archive, candidates, checks, database

FEEDS = 100
PER_DAY = 3_000
RUNS_PER_DAY = 96
ENTITIES_PER_ARTICLE = 20
COPY_SHARE = 0.10
LSH_KEYS = 32
CHUNK = 50_000  # articles per set-wise statement group: bounds the fill's memory at any size
FILL_VERSION = 2  # bump when the shape changes, so cached warehouses are refilled


def shape(articles: int) -> dict[str, int]:
    """The row counts a warehouse of `articles` articles has (runs and fetches follow the days it spans)."""
    days = max(1, -(-articles // PER_DAY))
    runs = days * RUNS_PER_DAY
    return {"articles": articles, "days": days, "runs": runs, "feed_fetches": runs * FEEDS,
            "duplicates": int(articles * COPY_SHARE), "entities": max(5_000, int(articles / 2.5)),
            "check_results": runs * len(checks.check_files())}


def feed_name(f: int) -> str:
    return f"f{f:03d}"


def _pieces(conn: object, corpus_text: list[str]) -> int:
    """~1 KB pieces of prose into temp table `pieces(p, body)`; returns how many."""
    pieces, cur = [], ""
    for para in (p.strip() for body in corpus_text for p in body.split("\n")):
        if not para:
            continue
        cur = f"{cur}\n{para}" if cur else para
        if len(cur) >= 1000:
            pieces.append(cur[:1400])
            cur = ""
    conn.register("pieces_arrow", pa.table({"p": list(range(len(pieces))), "body": pieces}))  # type: ignore[attr-defined]
    conn.execute("create or replace temp table pieces as select * from pieces_arrow")  # type: ignore[attr-defined]
    conn.unregister("pieces_arrow")  # type: ignore[attr-defined]
    return len(pieces)


def corpus_bodies() -> list[str]:
    """The English fundus bodies (benchmarks/corpora.py); a word salad when the corpus is absent."""
    try:
        from benchmarks.corpora import fundus_pages

        return [p.body for p in fundus_pages(lang="en")]
    except SystemExit:
        rng = np.random.default_rng(7)
        vocab = [f"word{i}" for i in range(20_000)]
        return [" ".join(rng.choice(vocab, 160)) + "." for _ in range(600)]


# Timestamps: run r starts at $t0 + r * 15 minutes; the year ends a quarter of an hour before the fill.
_ARTICLES = """
insert into articles by name
select (hash(i) >> 1)::bigint as article_id, 'https://news' || (i % 100) || '.example/a/' || i as url,
       'https://news' || (i % 100) || '.example/a/' || i as final_url, 'f' || lpad((i % 100)::varchar, 3, '0') as feed,
       'g' || i as entry_guid, 'Title of article ' || i as title, 'Author ' || (i % 997) as author,
       $t0 + to_minutes((r * 15)::bigint) - to_minutes((hash(i, 'p') % 360)::bigint) as published_at,
       'feed' as published_source,
       $t0 + to_minutes((r * 15)::bigint) + interval 30 second as fetched_at,
       case when i % 20 = 0 then 'fr' when i % 20 = 1 then 'de' else 'en' end as language,
       'News ' || (i % 100) as site_name,
       a.body || chr(10) || b.body || chr(10) || c.body || chr(10) || d.body as text,
       md5('t' || i) as text_hash, false as is_seed,
       case when i % 33 = 0 then 'feed_summary' else 'extracted' end as body_source,
       case when i % 33 = 0 then 'too_short' end as fallback_reason, 200 as http_status,
       'trafilatura' as extractor, '2.0' as extractor_version, '{}' as extractor_options,
       case when i % 20 = 1 then null else 'en_core_web_sm' end as ner_pipeline,
       case when i % 20 = 1 then 'no_pipeline' end as ner_skip_reason,
       650 as n_shingles, 40 + (i % 17) as n_samples, 'year-r' || lpad(r::varchar, 6, '0') as run_id,
       $t0 + to_minutes((r * 15)::bigint) + interval 1 minute as loaded_at,
       (hash(i, 'c') % 4)::integer as dedup_candidates, r + 1 as index_seq,
       'https://news' || (i % 100) || '.example/a/' || i as link, 'free' as access, false as is_teaser,
       false as is_consent_page, r + 1 as load_seq
from (select i, (i * $runs // $n)::bigint as r from range($lo, $hi) t(i)) t
join pieces a on a.p = hash(i, 1) % $np join pieces b on b.p = hash(i, 2) % $np
join pieces c on c.p = hash(i, 3) % $np join pieces d on d.p = hash(i, 4) % $np
"""
_INDEX = """
insert into lsh_buckets (key, article_id, seq)
select ((hash(i, k) >> 1)::bigint & ~511::bigint) | k, (hash(i) >> 1)::bigint, (i * $runs // $n) + 1
from range($lo, $hi) t(i), range(32) u(k);
insert into shingle_samples (hash, article_id, seq)
select (hash(i, 's', s) >> 1)::bigint, (hash(i) >> 1)::bigint, (i * $runs // $n) + 1
from range($lo, $hi) t(i), range(56) u(s) where s < 40 + (i % 17);
insert into article_entities (article_id, entity_id, mentions, load_seq)
select distinct on (i, e) (hash(i) >> 1)::bigint, e, 1 + (hash(i, k) % 4)::integer, (i * $runs // $n) + 1
from (select i, k, floor($ne * pow((hash(i, 'e', k) % 1000003) / 1000003.0, 3))::bigint as e
      from range($lo, $hi) t(i), range(22) u(k)) x
where i % 20 <> 1;
insert into entries (feed, guid, url, title, summary, published_at, first_seen_at, first_run_id, link)
select 'f' || lpad((i % 100)::varchar, 3, '0'), 'g' || i, 'https://news' || (i % 100) || '.example/a/' || i,
       'Title of article ' || i, 'The summary of article ' || i || ' as its feed gave it.',
       $t0 + to_minutes((r * 15)::bigint) - to_minutes((hash(i, 'p') % 360)::bigint),
       $t0 + to_minutes((r * 15)::bigint), 'year-r' || lpad(r::varchar, 6, '0'),
       'https://news' || (i % 100) || '.example/a/' || i
from (select i, (i * $runs // $n)::bigint as r from range($lo, $hi) t(i)) t;
insert into page_fetches (url, feed, run_id, http_status, final_url, content_type, bytes, duration_ms, outcome,
                          fetched_at)
select 'https://news' || (i % 100) || '.example/a/' || i, 'f' || lpad((i % 100)::varchar, 3, '0'),
       'year-r' || lpad(r::varchar, 6, '0'), 200, 'https://news' || (i % 100) || '.example/a/' || i, 'text/html',
       60000 + hash(i) % 80000, 150 + hash(i) % 900, case when i % 33 = 0 then 'fallback' else 'extracted' end,
       $t0 + to_minutes((r * 15)::bigint) + interval 30 second
from (select i, (i * $runs // $n)::bigint as r from range($lo, $hi) t(i)) t
"""
_COPIES = """
insert into duplicates (url, feed, entry_guid, title, duplicate_of, method, criterion, similarity, jaccard,
                        containment, text_hash, seen_at, run_id, load_seq)
select 'https://copy' || (j % 100) || '.example/c/' || j, 'f' || lpad(((j + 37) % 100)::varchar, 3, '0'), 'c' || j,
       'Copy ' || j, (hash(o) >> 1)::bigint, case when j % 4 = 0 then 'exact' else 'near' end,
       case when j % 4 = 0 then 'text_hash' when j % 4 = 1 then 'containment' else 'jaccard' end,
       0.9, 0.85, 0.95, md5('t' || o), $t0 + to_minutes(((o * $runs // $n) * 15 + 15)::bigint),
       'year-r' || lpad(least($runs - 1, o * $runs // $n + 1)::varchar, 6, '0'),
       least($runs - 1, o * $runs // $n + 1) + 1
from (select j, (hash(j, 'o') % $n)::bigint as o from range($lo, $hi) t(j)) x;
insert into entries (feed, guid, url, title, published_at, first_seen_at, first_run_id, link)
select feed, entry_guid, url, title, seen_at, seen_at, run_id, url from duplicates where entry_guid in
    (select 'c' || j from range($lo, $hi) t(j));
insert into page_fetches (url, feed, run_id, http_status, final_url, content_type, bytes, duration_ms, outcome,
                          fetched_at)
select url, feed, run_id, 200, url, 'text/html', 70000, 300, 'duplicate', seen_at from duplicates
where entry_guid in (select 'c' || j from range($lo, $hi) t(j))
"""
_BOOKKEEPING = """
insert into runs (run_id, flow, started_at, finished_at, status, feeds_total, feeds_ok, feeds_not_modified,
                  feeds_failed, entries_seen, entries_new, pages_fetched, articles_new, duplicates_near,
                  entity_mentions, checks_failed)
select 'year-r' || lpad(r::varchar, 6, '0'), 'ingest', $t0 + to_minutes((r * 15)::bigint),
       $t0 + to_minutes((r * 15)::bigint) + interval 2 minute, 'completed', 100, 30, 68, 2, 3000, 34, 34, 31, 3,
       620, 0
from range($runs) t(r);
insert into feed_fetches (fetch_id, run_id, feed, url, final_url, http_status, bytes, duration_ms, entries,
                          new_entries, outcome, error, fetched_at)
select 'year-r' || lpad(r::varchar, 6, '0') || ':' || 'f' || lpad(f::varchar, 3, '0'),
       'year-r' || lpad(r::varchar, 6, '0'), 'f' || lpad(f::varchar, 3, '0'), 'http://127.0.0.1/quiet/' || f || '.xml',
       'http://127.0.0.1/quiet/' || f || '.xml', case when (r + f) % 50 = 0 then 503 when (r + f) % 10 < 3 then 200
       else 304 end, 40000, 80 + (r * f) % 400, 30, case when (r + f) % 10 < 3 then 1 else 0 end,
       case when (r + f) % 50 = 0 then 'failed' when (r + f) % 10 < 3 then 'ok' else 'not_modified' end,
       case when (r + f) % 50 = 0 then 'http_503' end, $t0 + to_minutes((r * 15)::bigint) + interval 10 second
from range($runs) t(r), range(100) u(f);
insert into feeds (feed, url, configured_url, title, etag, last_fetch_at, last_success_at, last_status,
                   consecutive_failures, updated_at)
select 'f' || lpad(f::varchar, 3, '0'), 'http://127.0.0.1/quiet/' || f || '.xml',
       'http://127.0.0.1/quiet/' || f || '.xml', 'Feed ' || f, '"v1"', now(), now(), 304, 0, now()
from range(100) t(f);
insert into entities (entity_id, name, label, first_seen_at)
select e, 'Entity ' || e, (['PERSON', 'ORG', 'GPE', 'LOC'])[1 + e % 4], $t0 from range($ne) t(e)
"""
_CHECKS = """
insert into check_results (run_id, check_name, offending_rows, sample, duration_ms, checked_at)
select 'year-r' || lpad(r::varchar, 6, '0'), c.name, 0, null, 5 + r % 40,
       $t0 + to_minutes((r * 15)::bigint) + interval 2 minute
from range($runs) t(r), (select unnest($names::varchar[]) as name) c
"""


def _run(conn: object, sql: str, params: dict[str, object]) -> None:
    for statement in (s for s in sql.strip().split(";\n") if s.strip()):
        used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", statement)}
        conn.execute(statement, used)  # type: ignore[attr-defined]


def fill(settings: WarehouseSettings, articles: int, *, raw_kb: int = 12, retention_days: int = 90,
         log: object = None) -> dict[str, float]:
    """Create the warehouse through the project's init and fill it; returns seconds per part."""
    say = log or (lambda msg: print(f"yearfill: {msg}", file=sys.stderr, flush=True))
    s = shape(articles)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15 * s["runs"] + 15)
    base = {"t0": t0, "runs": s["runs"], "n": articles, "ne": s["entities"]}
    times: dict[str, float] = {}
    database.ensure_ready(settings)
    with database.connect(settings) as conn:
        start = time.perf_counter()
        _run(conn, _BOOKKEEPING, base)
        _run(conn, _CHECKS, {**base, "names": [p.stem for p in checks.check_files()]})
        times["bookkeeping"] = time.perf_counter() - start
        n_pieces = _pieces(conn, corpus_bodies())
        start = time.perf_counter()
        for lo in range(0, articles, CHUNK):
            hi = min(articles, lo + CHUNK)
            _run(conn, _ARTICLES, {**base, "lo": lo, "hi": hi, "np": n_pieces})
            _run(conn, _INDEX, {**base, "lo": lo, "hi": hi})
            say(f"{hi:,} / {articles:,} articles ({time.perf_counter() - start:.0f} s)")
        times["articles"] = time.perf_counter() - start
        start = time.perf_counter()
        for lo in range(0, s["duplicates"], CHUNK):
            _run(conn, _COPIES, {**base, "lo": lo, "hi": min(s["duplicates"], lo + CHUNK)})
        params = candidates.check_params(DedupSettings())
        conn.execute("delete from dedup_index")
        conn.execute("insert into dedup_index (method, params, built_at, seq) values ($m, $p::json, $t, $s)",
                     {"m": params["dedup_method"], "p": params["dedup_params"], "t": t0, "s": s["runs"]})
        # Every run of the year took a load sequence number (migration 0010): the rows above carry their run's.
        conn.execute("update load_sequence set seq = $s", {"s": s["runs"]})
        times["copies"] = time.perf_counter() - start
        start = time.perf_counter()
        _raw_archives(conn, settings.raw_dir, articles, s, t0, raw_kb, retention_days)
        times["raw"] = time.perf_counter() - start
        start = time.perf_counter()
        aggregates = _optional("flows.warehouse.aggregates", "rebuild_aggregates")
        if aggregates is not None:
            aggregates(conn)
        times["aggregates"] = time.perf_counter() - start if aggregates else -1.0
        start = time.perf_counter()
        conn.execute("checkpoint")
        times["checkpoint"] = time.perf_counter() - start
    return times


def _optional(module: str, name: str) -> object | None:
    """A function another change may add (guarded, so the benchmark runs before and after it lands)."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _raw_archives(conn: object, raw_dir: Path, articles: int, s: dict[str, int], t0: datetime, raw_kb: int,
                  retention_days: int) -> None:
    """One Parquet archive per run (a run loads its articles in about one batch) for the runs of the last
    `retention_days` days, with mtimes of their day, so raw-HTML retention sees their true age."""
    if raw_kb <= 0:
        return
    rng = np.random.default_rng(11)
    first_run = max(0, s["runs"] - retention_days * RUNS_PER_DAY)
    first = -(-first_run * articles // s["runs"])
    rows: list[tuple[str, datetime, str, int]] = []
    i = first
    while i < articles:
        r = i * s["runs"] // articles
        end = min(articles, -(-(r + 1) * articles // s["runs"]))
        at = t0 + timedelta(minutes=15 * r, seconds=30)
        urls = [f"https://news{k % 100}.example/a/{k}" for k in range(i, end)]
        rel = f"{at:%Y-%m-%d}/year-r{r:06d}.parquet"
        path = raw_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pages = [rng.bytes(raw_kb * 1024) for _ in urls]
        pq.write_table(pa.table({"url": urls, "fetched_at": [at] * len(urls), "encoding": ["zstd"] * len(urls),
                                 "html": pages}, schema=archive.SCHEMA), path, compression="none")
        os.utime(path, (at.timestamp(), at.timestamp()))
        rows += [(u, at, rel, raw_kb * 1024) for u in urls]
        i = end
        if len(rows) >= CHUNK or i >= articles:
            conn.register("raw_rows", pa.table({  # type: ignore[attr-defined]
                "url": [x[0] for x in rows], "fetched_at": [x[1] for x in rows],
                "archive_file": [x[2] for x in rows], "bytes": [x[3] for x in rows]}))
            conn.execute("insert into raw_archive by name select * from raw_rows")  # type: ignore[attr-defined]
            conn.unregister("raw_rows")  # type: ignore[attr-defined]
            rows = []
    for day in raw_dir.iterdir() if raw_dir.exists() else []:
        newest = max((f.stat().st_mtime for f in day.iterdir()), default=None)
        if newest is not None:
            os.utime(day, (newest, newest))


def counts(settings: WarehouseSettings) -> dict[str, int]:
    """Rows per table of a filled warehouse (the shape the test checks)."""
    names = ["articles", "duplicates", "entities", "article_entities", "lsh_buckets", "shingle_samples", "runs",
             "feed_fetches", "check_results", "entries", "page_fetches", "raw_archive", "feeds"]
    with database.connect(settings, read_only=True) as conn:
        return {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in names}  # type: ignore[index]
