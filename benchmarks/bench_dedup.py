"""Dedup at scale and load speed: candidate lookup and insert of 1,000 new articles against 1M stored synthetic
signatures, and rows per second into DuckDB for articles and entity mentions."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from benchmarks.corpora import fundus_pages
from flows.core.settings import Settings, WarehouseSettings
from flows.run import documents
from flows.text.seeds import Seed
from flows.warehouse import candidates, database, keycache, staging
from flows.warehouse.writer import decide, load_batch, signature_of

# Stored signatures generated inside DuckDB (no Python loop): `$samples` sampled shingle hashes (multiples of
# `$mod`, as flows.text.dedup.sample keeps) and `$bands` folded bucket keys
# (flows.warehouse.candidates.bucket_keys) per article, in insertion order, as loads append them.
_SYNTHETIC = """
insert into articles (article_id, url, text, text_hash, body_source, n_shingles, n_samples, run_id, loaded_at)
select i, 'http://127.0.0.1/s/' || i, 'synthetic', md5(i::varchar), 'extracted', $samples * $mod, $samples,
       'bench', now()
from range($n) t(i);
insert into lsh_buckets (key, article_id)
select ((hash(i, b) >> 1)::bigint & ~511::bigint) | b, i from range($n) t(i), range($bands) u(b);
insert into shingle_samples (hash, article_id)
select (hash(i, j, 'x') >> 4)::bigint // $mod * $mod, i from range($n) t(i), range($samples) u(j);
"""


@dataclass
class DedupScaleResult:
    stored: int
    new: int
    lookup_seconds: float
    insert_seconds: float
    index_mib_per_million: float
    fill_seconds: float
    samples_per_article: int
    index_rows: int
    cache_build_seconds: float
    cache_mib_per_million: float
    # The lookup alone (flows/warehouse/candidates.py stored_candidates), through the cache and the tables only.
    candidates_seconds: float
    candidates_sql_seconds: float | None
    first_lookup_seconds: float
    # The lookup alone once `behind` more articles are loaded and the cache is left behind by that many (the
    # loader refreshes it only from `[dedup] cache_refresh_articles` on): those rows are read from the tables.
    behind: int = 0
    candidates_behind_seconds: float = 0.0


@dataclass
class LoadResultRow:
    articles: int
    mentions: int
    article_rows_per_s: float
    mention_rows_per_s: float
    seconds: float


def new_docs(settings: Settings, n: int) -> list[dict]:
    """`n` distinct real-text documents with signatures: fundus bodies with a third of their lower-case words
    swapped at random (as benchmarks/site.py does), so that none is a near-copy of another."""
    bodies = [p.body for p in fundus_pages()]
    vocab = sorted({w for b in bodies for w in b.split() if w.isalpha() and w.islower()})
    rng = random.Random(11)
    docs = []
    for i in range(n):
        words = [rng.choice(vocab) if w.islower() and rng.random() < 0.35 else w
                 for w in bodies[i % len(bodies)].split()]
        text = f"Bench {i}. " + " ".join(words)
        docs.append(documents.seed_doc(Seed(f"bench-{i}.txt", date(2026, 1, 1), text, f"h{i}"), settings))
    return docs


def _db_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20


def dedup_scale(settings: Settings, *, stored: int = 1_000_000, new: int = 1000, sql_too: bool = True
                ) -> DedupScaleResult:
    """Fill `stored` synthetic signatures with as many samples as the real new documents have on average under the
    current settings, build the lookup cache from them as the first load after an upgrade would, then time the
    decision of `new` real documents (candidate lookup + verification), the lookup alone through the cache and,
    with `sql_too`, through the tables alone, and the insert."""
    behind = settings.dedup.cache_refresh_articles - 1  # the most a cache is ever behind after a load
    made = new_docs(settings, 2 * new + behind)
    first_docs, docs, later = made[:new], made[new:2 * new], made[2 * new:]
    per_article = round(sum(len(d.samples) for d in docs) / len(docs))
    params = {"n": stored, "bands": settings.dedup.bands, "samples": per_article, "mod": settings.dedup.sample_mod}
    sigs = {i: signature_of(d) for i, d in enumerate(docs)}
    with tempfile.TemporaryDirectory(prefix="newsflow-dedup-") as tmp_name:
        wh = WarehouseSettings(path=Path(tmp_name) / "scale.duckdb", staging_dir=Path(tmp_name) / "staging",
                               snapshot=False)
        with database.connect(wh) as conn:
            # The fill of 10M writes ~10 GB: bounded memory, so other work on a shared machine keeps its share.
            conn.execute("set memory_limit = '3GB'")
            database.migrate(conn)
            empty = _db_mib(wh.path)
            start = time.perf_counter()
            for stmt in filter(str.strip, _SYNTHETIC.split(";")):
                conn.execute(stmt, {k: v for k, v in params.items() if f"${k}" in stmt})
            candidates.record_index(conn, settings.dedup)
            conn.execute("checkpoint")
            fill = time.perf_counter() - start
            rows = sum(conn.execute(f"select count(*) from {t}").fetchone()[0]
                       for t in ("lsh_buckets", "shingle_samples"))
        index = (_db_mib(wh.path) - empty) * 1_000_000 / stored
        with database.connect(wh) as conn:
            start = time.perf_counter()
            cache = keycache.refresh(conn)
            cache_build = time.perf_counter() - start
            assert cache is not None
            cache_mib = cache.size_bytes() / 2**20 * 1_000_000 / stored
        with database.connect(wh) as conn:
            conn.execute("set memory_limit = '3GB'")
            # The first batch after opening the warehouse pays for mapping the cache's pages; a run decides
            # batch after batch, so the second one (other articles) is the steady state.
            start = time.perf_counter()
            with database.transaction(conn):
                decide(conn, first_docs, settings.dedup)
            first = time.perf_counter() - start
            start = time.perf_counter()
            with database.transaction(conn):
                verdicts = decide(conn, docs, settings.dedup)
            lookup = time.perf_counter() - start
            start = time.perf_counter()
            candidates.stored_candidates(conn, sigs, settings.dedup)
            alone = time.perf_counter() - start
            batch = staging.Batch("scale-0001", "bench")
            batch.add("docs", *docs)
            start = time.perf_counter()
            load_batch(conn, batch, settings.dedup)
            total = time.perf_counter() - start
            later_batch = staging.Batch("scale-0002", "bench")
            later_batch.add("docs", *later)
            load_batch(conn, later_batch, settings.dedup)  # under the refresh threshold: the cache stays behind
            state = keycache.index_state(conn)
            kept = keycache.KeyCache.open(wh.path.parent / f"{wh.path.name}.keys")
            assert state is not None and kept is not None and kept.seq < state.seq
            start = time.perf_counter()
            candidates.stored_candidates(conn, sigs, settings.dedup)
            alone_behind = time.perf_counter() - start
        sql = None
        if sql_too:
            shutil.rmtree(wh.path.parent / f"{wh.path.name}.keys")
            with database.connect(wh) as conn:
                conn.execute("set memory_limit = '3GB'")
                start = time.perf_counter()
                candidates.stored_candidates(conn, sigs, settings.dedup)
                sql = time.perf_counter() - start
        assert len(verdicts) == new
    return DedupScaleResult(stored, new, lookup, max(0.0, total - lookup), index, fill, per_article, rows,
                            cache_build, cache_mib, alone, sql, first, behind, alone_behind)


def load_speed(settings: Settings, *, articles: int = 2000, mentions_per_article: int = 25) -> LoadResultRow:
    """Load `articles` documents with `mentions_per_article` entity mentions each through flows.warehouse.writer."""
    docs = new_docs(settings, articles)
    for i, d in enumerate(docs):
        d.mentions = [{"name": f"Entity {(i * 7 + j) % 5000}", "label": "ORG", "mentions": 1 + j % 3}
                      for j in range(mentions_per_article)]
        d.ner_pipeline = "bench"
    with tempfile.TemporaryDirectory(prefix="newsflow-load-") as tmp_name:
        wh = WarehouseSettings(path=Path(tmp_name) / "load.duckdb", staging_dir=Path(tmp_name) / "staging",
                               snapshot=False)
        with database.connect(wh) as conn:
            database.migrate(conn)
            start = time.perf_counter()
            for k in range(0, articles, settings.pipeline.batch_size):
                batch = staging.Batch(f"load-{k:06d}", "bench")
                batch.add("docs", *docs[k:k + settings.pipeline.batch_size])
                load_batch(conn, batch, settings.dedup)
            seconds = time.perf_counter() - start
            n_articles = conn.execute("select count(*) from articles").fetchone()[0]
            n_mentions = conn.execute("select count(*) from article_entities").fetchone()[0]
    return LoadResultRow(n_articles, n_mentions, n_articles / seconds, n_mentions / seconds, seconds)


def main() -> None:
    """`python -m benchmarks.bench_dedup --stored 10000000`: one scale point, niced, fill time apart."""
    from flows.core.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--no-sql", action="store_true", help="skip the lookup through the tables alone")
    args = parser.parse_args()
    os.nice(10)  # a long fill on a shared machine
    r = dedup_scale(load_settings(env={}), stored=args.stored, new=args.new, sql_too=not args.no_sql)
    sql = f"{r.candidates_sql_seconds:.3f} s" if r.candidates_sql_seconds is not None else "not measured"
    print(f"stored {r.stored:,} ({r.samples_per_article} samples/article, {r.index_rows:,} index rows), "
          f"fill {r.fill_seconds:.1f} s, cache built in {r.cache_build_seconds:.1f} s; "
          f"decision of {r.new:,} (lookup + verification): {r.lookup_seconds:.3f} s (the first batch after "
          f"opening: {r.first_lookup_seconds:.3f} s); lookup alone: "
          f"{r.candidates_seconds:.3f} s through the cache, {sql} through the tables; "
          f"insert {r.insert_seconds:.3f} s; index {r.index_mib_per_million:.0f} MiB and cache "
          f"{r.cache_mib_per_million:.0f} MiB per 1M articles")


if __name__ == "__main__":
    main()
