"""Stories benchmark (issue 25): the time to place a new article in its story, and the memory it takes, with 10k,
100k and 1M articles already stored.

    python -m benchmarks.bench_stories                                     # 10k and 100k
    NEWSFLOW_BENCH_STORY_SCALES=10000,100000,1000000 python -m benchmarks.bench_stories
    python -m benchmarks.run stories                                       # the same, as a section of `make bench`

The stored part is filled set-wise in SQL, as the loader leaves it: `stories` and `story_articles` for every stored
article (two per story on average, 10,000 articles a day), the live state (`story_live`, `story_keys`: centroid terms,
entities, language) of the stories of the last two windows, and `story_df` for a vocabulary that grows with the
articles (Heaps' law). Then batches of 64 new articles, each with 250 words drawn from the same skewed vocabulary,
half of them written about a live story (its terms and entities) and half about nothing stored, are placed through
flows/warehouse/storystore.py exactly as the loader does, one transaction per batch. Target: under 10 ms per
article, flat with the stored articles; memory bounded (what a batch loads is the stories sharing a key with it).
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from benchmarks.machine import header, table
from flows.text.stories import StoryItem, StorySettings
from flows.warehouse import database, storystore

PER_DAY = 10_000
BATCH, BATCHES, WORDS = 64, 6, 250
END = datetime(2026, 12, 1, tzinfo=UTC)
SETTINGS = StorySettings()


@dataclass(frozen=True)
class StoryScale:
    stored: int
    live_stories: int
    live_keys: int
    vocabulary: int
    fill_seconds: float
    ms_per_article: float  # median over the batches
    ms_worst_batch: float  # the slowest batch, per article
    cpu_ms_per_article: float  # median over the batches of the process's CPU time (DuckDB's threads included)
    joined: float  # share of the new articles that joined a stored story
    loaded_stories: int  # stories a batch brought into memory (median)
    rss_mb: float  # the process's peak resident memory after placing


def vocabulary(stored: int) -> int:
    return int(5 * stored ** 0.8)


def _run(conn: duckdb.DuckDBPyConnection, sql: str, params: dict[str, object] | None = None) -> None:
    """`sql` with the parameters it names (DuckDB refuses unused ones)."""
    conn.execute(sql, {k: v for k, v in (params or {}).items() if f"${k}" in sql} or None)


def fill(conn: duckdb.DuckDBPyConnection, stored: int) -> None:
    """The tables as the loader leaves them after `stored` articles, written set-wise."""
    vocab = vocabulary(stored)
    days = stored / PER_DAY
    window = SETTINGS.window_days
    params = {"n": stored, "v": vocab, "end": END, "secs": days * 86400, "live": 2 * window * 86400}
    _run(conn, "begin transaction")
    # Rank i of the vocabulary is in about n / (i + 1)^0.9 articles (Zipf), at least 1.
    _run(conn, "insert into story_df select 't' || i, greatest(1, ($n / pow(i + 1, 0.9))::integer) "
                 "from range($v) r(i)", params)
    _run(conn, """
        insert into story_articles
        select i, i // 2, 'https://bench.example/' || i, 'title ' || i, null, 'outlet' || (i % 50), 'en',
               $end::timestamptz - to_seconds($secs * (1 - i / $n)), 0.5, i, now(), 'bench'
        from range($n) r(i)""", params)
    _run(conn, """
        insert into stories
        select story_id, any_value(title), min(published), max(published), count(*), count(*), count(distinct outlet),
               ['en'], ['Person ' || story_id], now()
        from story_articles group by story_id""")
    # Each live story's centroid: 150 terms drawn with a skew towards the common ones, 5 entities, its language.
    _run(conn, """
        create temp table q_terms as
        select distinct story_id, 't' || least($v - 1, floor($v * pow(hash(story_id, k) % 1000000 / 1e6, 3))::bigint)
               as term
        from stories, range(150) r(k)
        where last_seen >= $end::timestamptz - to_seconds($live)""", params)
    _run(conn, """
        insert into story_live
        select s.story_id, s.first_seen, s.last_seen, s.articles,
               string_agg(t.term, ' ' order by t.term), string_agg(1000 + hash(t.term) % 9000, ' ' order by t.term),
               to_json(map(['Person ' || s.story_id, 'Person ' || (s.story_id + 1), 'Place ' || (s.story_id % 1000)],
                           [2, 1, 1]))::varchar,
               to_json(map(['en'], [s.articles]))::varchar
        from stories s join q_terms t using (story_id)
        group by all""")
    _run(conn, """
        insert into story_keys
        select md5_number_upper(kind || key), key, kind, story_id, epoch_us(last_article)
        from (select term as key, 't' as kind, story_id from q_terms
              union all select unnest(json_keys(entities)), 'e', story_id from story_live)
        join story_live using (story_id)""")
    _run(conn, "drop table q_terms")
    _run(conn, "insert into story_state values ($n, $n, $end)", params)
    _run(conn, "commit")
    _run(conn, "checkpoint")


def _zipf_word(rng: random.Random, vocab: int) -> str:
    return f"t{min(vocab - 1, int(vocab * rng.random() ** 3))}"


def new_items(conn: duckdb.DuckDBPyConnection, stored: int, batch: int, start: int, rng: random.Random
              ) -> list[StoryItem]:
    """A batch of new articles: half about a live story (some of its terms and its entities), half about nothing."""
    vocab = vocabulary(stored)
    # Drawn by the seeded generator, not DuckDB's sample: the same batches whatever the code placing them.
    ids = [r[0] for r in conn.execute("select story_id from story_live order by story_id").fetchall()]
    live = rng.sample(ids, min(64, len(ids)))
    items = []
    for k in range(batch):
        words = [_zipf_word(rng, vocab) for _ in range(WORDS)]
        entities: tuple[str, ...] = (f"Nobody {start + k}",)
        if k % 2 == 0 and live:
            story = rng.choice(live)
            terms, names = conn.execute("select terms, entities from story_live where story_id = ?",
                                        [story]).fetchone()
            words = terms.split()[:40] * 2 + words
            entities = tuple(json.loads(names))
        rng.shuffle(words)
        items.append(StoryItem(str(10**12 + start + k), " ".join(words[:8]), " ".join(words),
                               END + timedelta(seconds=start + k), f"outlet{k % 50}", "en", entities))
    return items


def measure(stored: int, workdir: Path) -> StoryScale:
    path = workdir / f"stories-{stored}.duckdb"
    with duckdb.connect(str(path)) as conn:
        database.migrate(conn)
        t = time.perf_counter()
        fill(conn, stored)
        fill_seconds = time.perf_counter() - t
        live, keys = conn.execute("select (select count(*) from story_live), (select count(*) from story_keys)"
                                  ).fetchone()
        rng = random.Random(stored)
        per_article, cpu_per_article, joined, loaded = [], [], 0, []
        for b in range(BATCHES):
            items = new_items(conn, stored, BATCH, b * BATCH, rng)
            urls = {i.article_id: f"https://new.example/{i.article_id}" for i in items}
            conn.execute("begin transaction")
            t, cpu = time.perf_counter(), time.process_time()
            changes = storystore.place(conn, items, urls, SETTINGS, END, "bench")
            elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
            conn.execute("commit")
            if b:  # the first batch warms DuckDB's caches
                per_article.append(1000 * elapsed / len(items))
                cpu_per_article.append(1000 * cpu / len(items))
            joined += len(items) - len(changes.started)
            loaded.append(len(changes.grown) + len(changes.started))
    path.unlink()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return StoryScale(stored, live, keys, vocabulary(stored), fill_seconds, statistics.median(per_article),
                      max(per_article), statistics.median(cpu_per_article), joined / (BATCH * BATCHES),
                      int(statistics.median(loaded)), rss)


def scales() -> list[int]:
    raw = os.environ.get("NEWSFLOW_BENCH_STORY_SCALES", "10000,100000")
    return [int(x) for x in raw.split(",") if x.strip()]


def report() -> str:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-stories-") as tmp:
        for stored in scales():
            print(f"bench stories: {stored:,} stored ...", file=sys.stderr, flush=True)
            r = measure(stored, Path(tmp))
            rows.append([f"{r.stored:,}", f"{r.live_stories:,}", f"{r.live_keys:,}", f"{r.vocabulary:,}",
                         f"{r.fill_seconds:.1f}", f"{r.ms_per_article:.2f}", f"{r.ms_worst_batch:.2f}",
                         f"{r.cpu_ms_per_article:.2f}",
                         f"{r.joined:.0%}", f"{r.rss_mb:.0f}",
                         "met" if r.ms_per_article < 10 else "**missed**"])
    return ("## Stories: placing a new article (benchmarks/bench_stories.py)\n\n"
            f"Batches of {BATCH} new articles of {WORDS} words, placed in one transaction each as the loader does "
            f"(the first of {BATCHES} batches warms up and is not counted); stored articles filled set-wise at "
            f"{PER_DAY:,} a day. Target: under 10 ms per article, flat. CPU: the process's CPU time (DuckDB's "
            "threads included), steadier than the wall time on a shared machine. Peak RSS: the process's, the fill "
            "included.\n\n"
            + table(["stored articles", "live stories", "live keys", "vocabulary", "fill s", "ms / article",
                     "worst batch ms / article", "CPU ms / article", "joined a story", "peak RSS MB", "target"],
                    rows) + "\n")


if __name__ == "__main__":
    print(header("newsflow stories benchmark"))
    print(report())
