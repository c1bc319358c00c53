"""Re-run dedup, entity tagging or story clustering over stored articles, after a change of thresholds, spaCy
model or story settings.

No Prefect here: flows/ops/maintenance.py wraps these. Each batch is one transaction, so a run stopped half way
leaves every article either done or untouched, and running it again finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from flows.core.records import Document
from flows.core.settings import Settings
from flows.run.documents import tag_documents
from flows.run.workers import chunks
from flows.text import dedup, entities
from flows.text.dedup import BatchIndex
from flows.text.entities import entity_id
from flows.text.stories import StorySettings
from flows.warehouse import aggregates, candidates, database, keycache, storystore
from flows.warehouse.writer import delete_articles, next_load_seq, one_link_per_key, upsert

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class ReprocessStats:
    articles_seen: int = 0
    duplicates_found: int = 0
    articles_tagged: int = 0
    entity_mentions: int = 0
    articles_placed: int = 0
    stories: int = 0
    batches: int = 0


def _rows(conn: Any, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cur = conn.execute(database.query(name), params or {})
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _register(conn: Any, name: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    conn.register(name, pa.Table.from_pylist(rows, schema=schema))


_DEMOTED = pa.schema([("article_id", pa.int64()), ("duplicate_of", pa.int64()), ("method", pa.string()),
                      ("criterion", pa.string()), ("similarity", pa.float64()), ("jaccard", pa.float64()),
                      ("containment", pa.float64())])
_SIZES = pa.schema([("article_id", pa.int64()), ("n_shingles", pa.int32()), ("n_samples", pa.int32())])


def dedup_batch(conn: Any, settings: Settings, rows: list[dict[str, Any]], rank: dict[int, int], run_id: str
                ) -> int:
    """Re-sign one batch, re-index it and demote articles that copy an earlier one. Returns copies found.

    Only articles earlier in the reprocessing order count as originals; seeds are never demoted.
    """
    sigs = {r["article_id"]: dedup.signature(r["text"], settings.dedup) for r in rows}
    by_id = {r["article_id"]: r for r in rows}
    ids = list(sigs)
    conn.execute("delete from lsh_buckets where article_id in (select unnest($ids::bigint[]))", {"ids": ids})
    conn.execute("delete from shingle_samples where article_id in (select unnest($ids::bigint[]))", {"ids": ids})
    index, demoted, kept = BatchIndex(), [], []
    # One lookup for the whole batch (their own index rows were just deleted, so only other articles come back);
    # each article then counts only those earlier in the reprocessing order, like a fresh ingest would.
    found = candidates.stored_candidates(conn, {a: s for a, s in sigs.items()
                                                if not by_id[a]["is_seed"]}, settings.dedup)
    earlier = {a: [c for c in ids if c != a and rank.get(c, len(rank)) < rank[a]] for a, ids in found.items()}
    stored_sigs = candidates.stored_signatures(conn, (c for ids in earlier.values() for c in ids), settings.dedup)
    for r in rows:
        aid, sig = r["article_id"], sigs[r["article_id"]]
        best = None
        if not r["is_seed"]:
            others = [(stored_sigs[c], c) for c in earlier.get(aid, []) if c in stored_sigs]
            others += [(sigs[k], k) for k in index.candidates(sig, settings.dedup)]
            best = candidates.best_match(sig, others, settings.dedup)
        if best:
            m = best[0]
            demoted.append({"article_id": aid, "duplicate_of": best[1], "method": m.method,
                            "criterion": m.criterion, "similarity": m.similarity, "jaccard": m.jaccard,
                            "containment": m.containment})
        else:
            index.add(aid, sig)
            kept.append(aid)
    buckets, samples = [], []
    seq = candidates.next_seq(conn, settings.dedup) if kept else 0
    for a in kept:
        article_buckets, article_samples = candidates.index_rows(a, sigs[a].buckets, sigs[a].samples, seq)
        buckets += article_buckets
        samples += article_samples
    if buckets:
        conn.register("q_rows", pa.Table.from_pylist(buckets))
        conn.execute("insert into lsh_buckets by name select * from q_rows")
    if samples:
        conn.register("q_rows", pa.Table.from_pylist(samples))
        conn.execute("insert into shingle_samples by name select * from q_rows")
    _register(conn, "q_sizes", [{"article_id": a, "n_shingles": sigs[a].size, "n_samples": int(sigs[a].samples.size)}
                                for a in kept], _SIZES)
    conn.execute(database.query("reprocess_sizes"))
    if demoted:
        _register(conn, "q_demoted", demoted, _DEMOTED)
        # Numbered like a load's rows, so the next incremental check pass reads them (docs/checks.md).
        conn.execute(database.query("reprocess_demote"), {"run_id": run_id, "load_seq": next_load_seq(conn)})
        conn.execute(database.query("reprocess_repoint"))
        aggregates.recount_copies(conn, [x for d in demoted for x in (d["article_id"], d["duplicate_of"])])
        delete_articles(conn, [d["article_id"] for d in demoted])
    return len(demoted)


def redo_dedup(settings: Settings, run_id: str, batch_size: int, progress: Progress) -> ReprocessStats:
    """Re-decide every stored article against those before it, with the current dedup settings."""
    stats = ReprocessStats()
    with database.connect(settings.warehouse) as conn:
        database.migrate(conn)
        order = [r["article_id"] for r in _rows(conn, "reprocess_order")]
    rank = {a: i for i, a in enumerate(order)}
    for chunk in chunks(order, batch_size):
        with database.connect(settings.warehouse) as conn, database.transaction(conn):
            rows = sorted(_rows(conn, "reprocess_articles", {"ids": chunk}), key=lambda r: rank[r["article_id"]])
            stats.duplicates_found += dedup_batch(conn, settings, rows, rank, run_id)
        stats.articles_seen += len(rows)
        stats.batches += 1
        progress(stats.articles_seen, len(order))
    # Only now is every stored article signed the current way; a run stopped earlier leaves the old record, so
    # the dedup_index_stale check keeps asking for this run to finish.
    with database.connect(settings.warehouse) as conn, database.transaction(conn):
        candidates.record_index(conn, settings.dedup, rebuilt=True)
    with database.connect(settings.warehouse) as conn:
        keycache.safe_refresh(conn, rebuild=True)  # rebuilt for the new index record, so the next load's lookup seeks
    return stats


def current_pipelines(settings: Settings) -> list[str]:
    """Versions of every configured pipeline: an article tagged by one of them is up to date."""
    return [entities.pipeline_version(entities.load_pipeline(name)) for name in entities.configured(settings.entities)]


_TAGGED = pa.schema([("article_id", pa.int64()), ("ner_pipeline", pa.string()), ("ner_skip_reason", pa.string())])


def retag(settings: Settings, pool: Executor, batch_size: int, only_stale: bool, progress: Progress
          ) -> ReprocessStats:
    """Tag articles again with the configured spaCy pipelines, replacing their entity links batch by batch."""
    stats = ReprocessStats()
    with database.connect(settings.warehouse) as conn:
        database.migrate(conn)
        todo = [r["article_id"] for r in _rows(conn, "reprocess_entities_stale",
                                                {"all": not only_stale, "pipelines": current_pipelines(settings)})]
    for chunk in chunks(todo, batch_size):
        # Read, tag outside any transaction (NER is the slow part), then write the batch in one transaction.
        with database.connect(settings.warehouse) as conn:
            rows = _rows(conn, "reprocess_articles", {"ids": chunk})
        docs = [(r["article_id"], Document(url=r["url"], text=r["text"], body_source="", text_hash="", shingles=[],
                                           buckets=[], samples=[], feed=r["feed"], language=r["language"],
                                           is_consent_page=r["is_consent_page"]))
                for r in rows]
        tag_documents(pool, [d for _, d in docs], settings)
        links = one_link_per_key([{"article_id": a, "entity_id": entity_id(m["name"], m["label"]),
                                   "mentions": m["mentions"]} for a, d in docs for m in d.mentions])
        names = {entity_id(m["name"], m["label"]): (m["name"], m["label"]) for _, d in docs for m in d.mentions}
        with database.connect(settings.warehouse) as conn, database.transaction(conn):
            ids = [a for a, _ in docs]
            aggregates.remove_links(conn, ids)
            conn.execute("delete from article_entities where article_id in (select unnest($ids::bigint[]))",
                         {"ids": ids})
            if names:
                conn.register("q_rows", pa.Table.from_pylist(
                    [{"entity_id": e, "name": n, "label": lab} for e, (n, lab) in names.items()]))
                conn.execute("create or replace temp view q_entities as select *, now() as first_seen_at from q_rows")
                upsert(conn, "entities", "q_entities", ["entity_id", "name", "label", "first_seen_at"], keep="ignore")
            if links:
                # A new load sequence number: the next incremental checks read these links, and a link never
                # carries a smaller number than its article (aggregates_match reads links from there on).
                seq = next_load_seq(conn)
                conn.register("q_rows", pa.Table.from_pylist([{**x, "load_seq": seq} for x in links]))
                conn.execute("insert into article_entities by name select * from q_rows")
            aggregates.add_links(conn, ids)
            _register(conn, "q_tagged", [{"article_id": a, "ner_pipeline": d.ner_pipeline,
                                          "ner_skip_reason": d.ner_skip_reason} for a, d in docs], _TAGGED)
            conn.execute(database.query("reprocess_entities_done"))
        stats.articles_tagged += len(docs)
        stats.entity_mentions += sum(x["mentions"] for x in links)
        stats.batches += 1
        progress(stats.articles_tagged, len(todo))
    return stats


def rebuild_stories(settings: Settings, batch_size: int, progress: Progress) -> ReprocessStats:
    """Place every stored article and copy in its story again, in canonical order, with the current [stories]
    settings (after a change of them, or of dedup or entities, which stories read)."""
    stats = ReprocessStats()
    with database.connect(settings.warehouse) as conn:
        database.migrate(conn)
        stats.articles_placed = storystore.rebuild(conn, StorySettings.from_config(settings.stories),
                                                   chunk=batch_size, progress=progress)
        stats.stories = conn.execute("select count(*) from stories").fetchone()[0]
    stats.batches = -(-stats.articles_placed // batch_size)
    return stats


def counts(stats: ReprocessStats) -> dict[str, int]:
    return {k: v for k, v in vars(stats).items() if isinstance(v, int)}

