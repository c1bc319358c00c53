"""The load step: the one writer. Decides each document's dedup verdict against the warehouse and loads a
batch in one transaction with set-based, idempotent inserts.

Deciding inside the load transaction makes the warehouse the single source of truth: two runs that meet, or a
staged batch loaded a day late, still store each story once.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from flows.core.errors import WarehouseLocked, describe, pause_point
from flows.core.records import Document
from flows.core.sections import DedupSettings, StoriesSettings
from flows.text.dedup import EXACT, BatchIndex, Match, Signature
from flows.text.entities import entity_id
from flows.text.stories import StoryItem, StorySettings, clock
from flows.warehouse import aggregates, archive, candidates, keycache, lake, rawcodec, storystore
from flows.warehouse.database import query, transaction
from flows.warehouse.staging import Batch, stable_key

_UPSERT = {  # table -> statement verb: state tables take the latest row, event tables keep the first
    "runs": "insert or replace",
    "feeds": "insert or replace",
    "feed_fetches": "insert or ignore",
    "entries": "insert or ignore",
    "page_fetches": "insert or replace",
}
# The natural keys of the keyed tables (primary key first, then any other unique key). The DuckDB file declares
# them as constraints (all but UNDECLARED_KEYS); a DuckLake cannot, so upsert() enforces them with statements
# that work on both backends
# (tests/test_ducklake.py checks this list against the file's constraints).
KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "schema_migrations": (("version",),),
    "runs": (("run_id",),),
    "feeds": (("feed",),),
    "feed_fetches": (("fetch_id",),),
    "entries": (("feed", "guid"),),
    "articles": (("article_id",), ("url",)),
    "duplicates": (("url",),),
    "entities": (("entity_id",), ("name", "label")),
    "article_entities": (("article_id", "entity_id"),),
    "page_fetches": (("url",),),
    "raw_pages": (("url",),),
    "raw_archive": (("url",),),
    "check_results": (("run_id", "check_name"),),
    # The maintenance roll-up's summaries (flows/warehouse/rollup.py): written by MERGE on these keys, never loaded.
    "feed_fetch_days": (("feed", "day"),),
    "check_result_days": (("check_name", "day"),),
    "run_days": (("day", "flow", "status"),),
    # The report's aggregates (flows/warehouse/aggregates.py), kept by each load.
    "daily_entity_mentions": (("day", "entity_id"),),
    "entity_totals": (("entity_id",),),
    "daily_feed_articles": (("day", "feed"),),
    "feed_quality": (("feed",),),
    "story_copies": (("article_id",),),
    # Stories (flows/warehouse/storystore.py), placed by each load.
    "stories": (("story_id",),),
    "story_articles": (("article_id",),),
    "story_live": (("story_id",),),
    "story_df": (("term",),),
}
# Keys the DuckDB file does not declare either, kept by the loader alone: the entity links' index cost each load a
# probe per link and its checkpoint the index blocks those dirtied, growing with the warehouse (migration 0016).
UNDECLARED_KEYS = frozenset({"article_entities"})
# State rows that must never be rolled back: a run computes a feed's state from the stored one it read at its
# start, which is the published snapshot when the live file was held then (hours old, maybe). So a state replaces
# the stored row only when it was fetched later (the same fetch loaded again changes nothing), and the counters it
# carries forward come from the stored row: a failure after the stored fetch is that row's failures + 1.
# table -> (the column it needs, condition for r to replace t, {column: expression}); for rows without the column
# (hand-made state rows), the plain replace.
_REPLACE_RULES: dict[str, tuple[str, str, dict[str, str]]] = {
    "feeds": ("last_fetch_at", "r.last_fetch_at > t.last_fetch_at or t.last_fetch_at is null", {
        "last_success_at": "greatest(t.last_success_at, r.last_success_at)",
        "consecutive_failures": "case when r.consecutive_failures = 0 then 0 else t.consecutive_failures + 1 end",
    }),
}
_ARTICLE_COLUMNS = (
    "url", "canonical_url", "final_url", "feed", "entry_guid", "title", "author", "published_at",
    "published_source", "fetched_at", "language", "site_name", "text", "text_hash", "is_seed", "seed_file",
    "seed_file_hash", "body_source", "fallback_reason", "http_status", "extractor", "extractor_version",
    "extractor_options", "ner_pipeline", "ner_skip_reason", "link", "access", "is_teaser", "is_consent_page",
)
_LATEST = datetime.max.replace(tzinfo=UTC)
log = logging.getLogger("newsflow.writer")
# What a path blocked for good raises, as opposed to a full disk or an I/O error, which may pass.
_PATH_IN_THE_WAY = (NotADirectoryError, IsADirectoryError, FileExistsError, PermissionError)


@dataclass(frozen=True)
class Verdict:
    status: str  # new | duplicate | known
    duplicate_of: int | None = None
    match: Match | None = None
    # For a new document, provenance of the verdict: how many candidates were verified, and the closest one.
    candidates: int = 0
    nearest: int | None = None
    nearest_jaccard: float | None = None
    nearest_containment: float | None = None


@dataclass
class LoadResult:
    new: int = 0
    exact: int = 0
    near: int = 0
    known: int = 0
    mentions: int = 0
    raw_not_archived: int = 0  # new pages whose raw HTML could not be written to the archive (logged)
    verdicts: list[Verdict] | None = None
    stories: storystore.StoryChanges | None = None


def signature_of(doc: Document) -> Signature:
    return Signature(
        text_hash=doc.text_hash,
        shingles=np.asarray(doc.shingles, dtype=np.int64).view(np.uint64),
        buckets=np.asarray(doc.buckets, dtype=np.int64),
        samples=np.asarray(doc.samples, dtype=np.int64),
        text=doc.text,
    )


def decision_order(docs: list[Document], tiers: list[int] | None = None) -> list[int]:
    """The order in which a batch's documents are judged, so the copy kept of a pair that arrives in one batch
    does not depend on how the batch happens to be ordered: seeds first, then the earliest published, then by
    URL. `tiers` (lower first) keeps documents of an earlier batch ahead of a later one's."""
    def key(i: int) -> tuple[int, bool, datetime, str]:
        d = docs[i]
        return ((tiers[i] if tiers else 0), not d.is_seed, d.published_at or _LATEST, d.url)

    return sorted(range(len(docs)), key=key)


def _register(conn: duckdb.DuckDBPyConnection, name: str, rows: list[dict[str, Any]]) -> None:
    conn.register(name, pa.Table.from_pylist(rows))


def decide(conn: duckdb.DuckDBPyConnection, docs: list[Document], settings: DedupSettings,
           replace_seeds: bool = False, tiers: list[int] | None = None) -> list[Verdict]:
    """Each document's verdict against the warehouse and the documents judged before it (decision_order).

    With `replace_seeds`, a seed whose file changed is deleted so that it is loaded again as new.
    """
    if not docs:
        return []
    sigs = [signature_of(d) for d in docs]
    _register(conn, "q_docs", [
        {"doc": i, "url": d.url, "text_hash": d.text_hash, "is_seed": d.is_seed,
         "seed_file_hash": d.seed_file_hash, "n_samples": len(d.samples)}
        for i, d in enumerate(docs)
    ])
    verdicts: dict[int, Verdict] = {}
    stale_seeds: list[int] = []
    with candidates.keys_pushed(conn, len(docs)):
        known = conn.execute(query("dedup_known")).fetchall()
    for i, article_id, _is_seed, same_seed, kind in known:
        # Only a stored seed is replaced: a seed recorded as a copy points at another article, never deleted here.
        if docs[i].is_seed and same_seed is False and kind == "article":
            stale_seeds.append(article_id)
        else:
            verdicts[i] = Verdict("known", article_id)
    if stale_seeds and replace_seeds:
        delete_articles(conn, stale_seeds)

    todo = [i for i in decision_order(docs, tiers) if i not in verdicts]
    stored = candidates.stored_candidates(conn, {i: sigs[i] for i in todo}, settings)
    stored_sigs = candidates.stored_signatures(conn, (a for ids in stored.values() for a in ids), settings)

    copies = dict(conn.execute(query("dedup_exact_seen")).fetchall())
    copy_hashes: dict[str, int] = {}
    index = BatchIndex()
    for i in todo:
        if docs[i].is_consent_page:
            # Dedup skips a consent page: the same notice on every page of a site is not a story and its copies,
            # and a later article must never be filed as a copy of one. Stored as new, never indexed.
            verdicts[i] = Verdict("new")
            continue
        seen = copies.get(i) or copy_hashes.get(sigs[i].text_hash)
        if seen is not None:
            verdicts[i] = Verdict("duplicate", seen, EXACT)
            continue
        pairs = [(stored_sigs[a], a) for a in stored.get(i, []) if a in stored_sigs]
        pairs += [(sigs[j], stable_key(docs[j].url)) for j in index.candidates(sigs[i], settings)]
        best = candidates.best_match(sigs[i], pairs, settings)
        if best:
            verdicts[i] = Verdict("duplicate", best[1], best[0], candidates=len(pairs))
            copy_hashes.setdefault(sigs[i].text_hash, best[1])
        else:
            verdicts[i] = _new_verdict(sigs[i], pairs)
            index.add(i, sigs[i])
    return [verdicts[i] for i in range(len(docs))]


def _new_verdict(sig: Signature, pairs: list[tuple[Signature, int]]) -> Verdict:
    """A 'new' verdict that records the closest candidate verified and its scores (below the thresholds)."""
    nearest: tuple[float, float, int] | None = None
    for other, other_id in pairs:
        if not sig.size or not other.size:
            continue
        shared = np.intersect1d(sig.shingles, other.shingles, assume_unique=True).size
        scores = (shared / (sig.size + other.size - shared), shared / min(sig.size, other.size), other_id)
        if nearest is None or scores[:2] > nearest[:2]:
            nearest = scores
    if nearest is None:
        return Verdict("new", candidates=len(pairs))
    return Verdict("new", candidates=len(pairs), nearest=nearest[2], nearest_jaccard=nearest[0],
                   nearest_containment=nearest[1])


def delete_articles(conn: duckdb.DuckDBPyConnection, ids: list[int]) -> None:
    """Remove articles and everything derived from them (used when a seed file changes), and their share of the
    report's aggregates."""
    aggregates.remove_articles(conn, ids)
    for table in ("article_entities", "lsh_buckets", "shingle_samples", "articles"):
        conn.execute(f"delete from {table} where article_id in (select unnest($ids::bigint[]))", {"ids": ids})


def one_link_per_key(links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first link of each article and entity: article_entities declares no key (warehouse/migrations/0016),
    so its writers keep it."""
    first: dict[tuple[int, int], dict[str, Any]] = {}
    for row in links:
        first.setdefault((row["article_id"], row["entity_id"]), row)
    return list(first.values())


def _insert_links(conn: duckdb.DuckDBPyConnection, links: list[dict[str, Any]]) -> None:
    """The load's entity links (stamped with its number by _number_rows), one per key, for the articles this load
    stored: the table has no key index to skip the others on."""
    if not links:
        return
    conn.register("q_rows", pa.Table.from_pylist(one_link_per_key(links)))
    try:
        conn.execute(query("insert_article_links"), {"seq": links[0]["load_seq"]})
    finally:
        conn.unregister("q_rows")


class _KeyClashError(Exception):
    """A row's second key was stored under another primary key, which the caller ruled out: load it again with
    every key checked (`on_primary=False`)."""


def _insert(conn: duckdb.DuckDBPyConnection, verb: str, table: str, rows: list[dict[str, Any]], *,
            on_primary: bool = False) -> None:
    """Insert `rows` with the semantics of `verb` ("insert", "insert or ignore", "insert or replace") on either
    backend: the `or` verbs run as upsert() on the table's KEYS, except an `ignore` into a DuckDB file's table of one
    key, which DuckDB's own `or ignore` does on the key's index (the file declares every key in KEYS).

    `on_primary`: the caller knows no row's other keys are stored (the loader looked its articles' URLs up in the
    same transaction), so on a file an `ignore` skips on the primary key's index alone; should another key clash
    after all, DuckDB raises and so does this, as _KeyClashError (the transaction is then aborted: start it again)."""
    if not rows:
        return
    keep = verb.removeprefix("insert or ") if verb != "insert" else None
    if keep:
        # One row per key (DuckDB's own `or replace` refuses two in one statement): the first, or the latest.
        by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in rows:
            key = tuple(row[k] for k in KEYS[table][0])
            if keep == "replace" or key not in by_key:
                by_key[key] = row
        rows = list(by_key.values())
    conn.register("q_rows", pa.Table.from_pylist(rows))
    try:
        if keep == "ignore" and len(KEYS[table]) == 1 and not lake.is_lake(conn):
            # On a DuckDB file the key is a constraint with its index: a probe per row. upsert()'s anti-join reads
            # every stored key instead, which grows with the warehouse: at a year, 0.4 s of a quiet run for its
            # 100 feed fetches (3.2M stored), 0.4-2.2 s of a load for 2,560 entity links (20M stored). Not for a
            # table of two keys: DuckDB's `or ignore` on articles (id and URL) took 2-2.4 s where the anti-joins
            # take 0.3 s (benchmarks/quietyear.py --inserts).
            conn.execute(f"insert or ignore into {table} by name select * from q_rows")
        elif keep == "ignore" and on_primary and not lake.is_lake(conn):
            # `on conflict` on the primary key alone: both keys' indexes probed per row, 32-43 ms for 128 articles
            # at 1M stored where the anti-joins read every stored id and URL (172-336 ms); DuckDB's own `or ignore`
            # on both keys took 2 s (benchmarks/quietyear.py --inserts).
            try:
                conn.execute(f"insert into {table} by name select * from q_rows "
                             f"on conflict ({', '.join(KEYS[table][0])}) do nothing")
            except duckdb.ConstraintException as exc:
                raise _KeyClashError(f"{table}: {str(exc).strip().splitlines()[-1]}") from exc
        elif keep:
            upsert(conn, table, "q_rows", list(rows[0]), keep=keep)
        else:
            conn.execute(f"insert into {table} by name select * from q_rows")
    finally:
        conn.unregister("q_rows")


def upsert(conn: duckdb.DuckDBPyConnection, table: str, source: str, columns: list[str], *, keep: str) -> None:
    """`insert or ignore` (keep="ignore") / `insert or replace` (keep="replace") of `columns` of the relation
    `source` (one row per key) into `table`, as statements that also hold on a DuckLake, which has no key
    constraints: a row whose key (any of KEYS[table]) is stored is skipped, or updates the stored row."""
    keys = KEYS[table]
    names = ", ".join(columns)
    if keep == "ignore":
        absent = " and ".join(
            f"not exists (select 1 from {table} t where {' and '.join(f't.{k} = r.{k}' for k in key)})"
            for key in keys if set(key) <= set(columns))
        conn.execute(f"insert into {table} by name select {names} from {source} r where {absent}")
    elif keep == "replace":
        primary = keys[0]
        on = " and ".join(f"t.{k} = r.{k}" for k in primary)
        rule = _REPLACE_RULES.get(table)
        newer = rule[1] if rule and rule[0] in columns else None
        overrides = rule[2] if rule and newer else {}
        updates = ", ".join(f"{c} = {overrides.get(c, f'r.{c}')}" for c in columns if c not in primary)
        older = f"when matched and not ({newer}) then do nothing " if newer else ""
        matched = f"when matched then update set {updates} " if updates else ""
        conn.execute(f"merge into {table} t using (select {names} from {source}) r on {on} "
                     f"{older}{matched}when not matched then insert by name")
    else:
        raise ValueError(f"keep must be 'ignore' or 'replace', not {keep!r}")


def load_batch(conn: duckdb.DuckDBPyConnection, batch: Batch, settings: DedupSettings, *,
               raw_dir: Path | None = None, attempts: int = 5, stories: StoriesSettings | None = None) -> LoadResult:
    """Load one batch in one transaction (_load_once). On a DuckLake, where writers on other machines commit
    at the same time, a commit that loses to another's is retried with backoff, deciding the batch again against
    what the other stored; still losing after `attempts`, WarehouseLocked, as for a held file (it stays staged)."""
    stories = stories or StoriesSettings()
    try:
        return _load_keyed(conn, batch, settings, raw_dir=raw_dir, attempts=attempts, stories=stories)
    except duckdb.OutOfMemoryException as exc:
        # Rolled back (DuckDB aborts a transaction that ran out of memory). Without a lookup cache the candidate
        # lookup runs under a small memory cap (flows/warehouse/candidates.py FALLBACK_MB), which a batch with
        # unusually many candidates can exceed: once more, under DuckDB's own limit.
        log.warning("batch %s: %s; loading it again with the candidate lookup uncapped", batch.batch_id,
                    str(exc).strip().splitlines()[0])
        with candidates.uncapped():
            return _load_keyed(conn, batch, settings, raw_dir=raw_dir, attempts=attempts, stories=stories)


def _load_keyed(conn: duckdb.DuckDBPyConnection, batch: Batch, settings: DedupSettings, *, raw_dir: Path | None,
                attempts: int, stories: StoriesSettings) -> LoadResult:
    try:
        return _load_retrying(conn, batch, settings, raw_dir=raw_dir, attempts=attempts, stories=stories,
                              on_primary=True)
    except _KeyClashError as exc:
        # Rolled back. A stored article holds a batch URL under an id that is not the URL's hash, which this
        # loader never writes: loaded again the way a lake is, where such a row is skipped, as it always was.
        log.warning("batch %s: %s; loading it again with every key checked", batch.batch_id, exc)
        return _load_retrying(conn, batch, settings, raw_dir=raw_dir, attempts=attempts, stories=stories,
                              on_primary=False)


def _load_retrying(conn: duckdb.DuckDBPyConnection, batch: Batch, settings: DedupSettings, *, raw_dir: Path | None,
                   attempts: int, stories: StoriesSettings, on_primary: bool) -> LoadResult:
    delay = 0.05
    for attempt in range(attempts):
        try:
            return _load_once(conn, batch, settings, raw_dir=raw_dir, stories=stories, on_primary=on_primary)
        except duckdb.Error as exc:
            if not lake.is_conflict(exc):
                raise
            if attempt + 1 == attempts:
                raise WarehouseLocked(f"batch {batch.batch_id}: lost {attempts} commits in a row to other "
                                      f"writers of the lake ({str(exc).strip().splitlines()[-1]})") from None
        time.sleep(delay * (0.5 + random.random()))  # jittered, so two writers that met do not meet again
        delay *= 2
    raise AssertionError("unreachable")


def next_load_seq(conn: duckdb.DuckDBPyConnection) -> int:
    """Take the next load sequence number, inside the caller's transaction (a rollback gives it back)."""
    conn.execute(query("load_sequence_next"))
    return conn.execute("select seq from load_sequence").fetchall()[0][0]


def _number_rows(conn: duckdb.DuckDBPyConnection, taken: int | None, *tables: list[dict[str, Any]]) -> int | None:
    """Stamp the rows the incremental checks read with this load's sequence number (warehouse/migrations/0010,
    0015): `taken` earlier in the load's transaction, or taken now, only when it writes any. Returns it."""
    if not any(tables):
        return taken
    load_seq = taken if taken is not None else next_load_seq(conn)
    for rows in tables:
        for row in rows:
            row["load_seq"] = load_seq
    return load_seq


def _duplicate_row(doc: Document, verdict: Verdict, now: datetime, run_id: str) -> dict[str, Any]:
    """The `duplicates` row of a document found to copy a stored article."""
    m = verdict.match
    assert m is not None
    return {"url": doc.url, "feed": doc.feed, "entry_guid": doc.entry_guid, "title": doc.title,
            "duplicate_of": verdict.duplicate_of, "method": m.method, "criterion": m.criterion,
            "similarity": m.similarity, "jaccard": m.jaccard, "containment": m.containment,
            "text_hash": doc.text_hash, "seen_at": now, "run_id": run_id}


def _story_items(docs: list[Document], verdicts: list[Verdict], now: datetime
                 ) -> tuple[list[StoryItem], dict[str, str]]:
    """The batch's new articles (consent pages aside) and copies, as the story clusterer reads them."""
    items, urls = [], {}
    for doc, verdict in zip(docs, verdicts, strict=True):
        if verdict.status == "known" or (verdict.status == "new" and doc.is_consent_page):
            continue
        key = str(stable_key(doc.url))
        if verdict.status == "new":
            outlet = doc.feed or doc.site_name or ("seed" if doc.is_seed else "")
            items.append(StoryItem(key, doc.title or "", doc.text, clock(doc.published_at, doc.fetched_at, now),
                                   outlet, doc.language, tuple(sorted({m["name"] for m in doc.mentions}))))
        else:
            items.append(StoryItem(key, doc.title or "", "", clock(doc.published_at, now, now), doc.feed or "",
                                   doc.language, (), str(verdict.duplicate_of)))
        urls[key] = doc.url
    return items, urls


def _load_once(conn: duckdb.DuckDBPyConnection, batch: Batch, settings: DedupSettings, *,
               raw_dir: Path | None = None, stories: StoriesSettings | None = None,
               on_primary: bool = False) -> LoadResult:
    """Load one batch in one transaction. Loading the same batch twice changes nothing.

    `on_primary`: new articles are inserted skipping on their id alone (_insert), which holds because decide()
    found none of their URLs stored, in this transaction; a clash raises _KeyClashError.

    The raw HTML of new articles goes to a Parquet archive under `raw_dir` (flows/warehouse/archive.py), pointed at
    by `raw_archive` rows; without `raw_dir` it is not kept.
    """
    now = datetime.now(UTC)
    result = LoadResult()
    docs = batch.docs
    with transaction(conn):
        fetches = [dict(r) for r in batch.rows("feed_fetches")]  # copies: numbered again if the load is retried
        load_seq = _number_rows(conn, None, fetches)
        for table, verb in _UPSERT.items():
            if table != "page_fetches":
                _insert(conn, verb, table, fetches if table == "feed_fetches" else batch.rows(table))
        verdicts = decide(conn, docs, settings, replace_seeds=True)
        # The load sequence number of this batch's index rows (flows/warehouse/keycache.py), taken only when it adds
        # any.
        indexes = any(v.status == "new" and not d.is_consent_page for d, v in zip(docs, verdicts, strict=True))
        seq = candidates.next_seq(conn, settings) if indexes else 0
        articles, dups, buckets, samples, entities, links, raw = [], [], [], [], [], [], []
        outcome: dict[str, str] = {}
        for doc, verdict in zip(docs, verdicts, strict=True):
            if verdict.status == "known":
                result.known += 1
                continue
            if verdict.status == "duplicate":
                m = verdict.match
                assert m is not None
                result.exact += m.method == "exact"
                result.near += m.method == "near"
                outcome[doc.url] = "duplicate"
                dups.append(_duplicate_row(doc, verdict, now, batch.run_id))
                continue
            article_id = stable_key(doc.url)
            result.new += 1
            row = {c: getattr(doc, c) for c in _ARTICLE_COLUMNS}
            indexed = not doc.is_consent_page  # a consent page is no dedup original: no index rows, no index_seq
            row.update(article_id=article_id, n_shingles=len(doc.shingles),
                       n_samples=len(doc.samples) if indexed else 0, index_seq=seq if indexed else None,
                       run_id=batch.run_id, loaded_at=now, dedup_candidates=verdict.candidates,
                       dedup_nearest=verdict.nearest, dedup_nearest_jaccard=verdict.nearest_jaccard,
                       dedup_nearest_containment=verdict.nearest_containment)
            articles.append(row)
            if indexed:
                doc_buckets, doc_samples = candidates.index_rows(article_id, doc.buckets, doc.samples, seq)
                buckets += doc_buckets
                samples += doc_samples
            for m in doc.mentions:
                eid = entity_id(m["name"], m["label"])
                entities.append({"entity_id": eid, "name": m["name"], "label": m["label"], "first_seen_at": now})
                links.append({"article_id": article_id, "entity_id": eid, "mentions": m["mentions"]})
                result.mentions += m["mentions"]
            if doc.raw_html:
                raw.append({"url": doc.url, "fetched_at": doc.fetched_at or now,
                            "encoding": rawcodec.encoding_of(doc.raw_html), "html": doc.raw_html})
        _number_rows(conn, load_seq, articles, dups, links)
        _insert(conn, "insert or ignore", "articles", articles, on_primary=on_primary)
        _insert(conn, "insert or ignore", "duplicates", dups)
        _insert(conn, "insert", "lsh_buckets", buckets)
        _insert(conn, "insert", "shingle_samples", samples)
        _insert(conn, "insert or ignore", "entities", entities)
        _insert_links(conn, links)
        aggregates.add_batch(conn, articles, links, dups)
        if raw and raw_dir is not None:
            # Only now is it known which pages are new. The file is durable before the rows pointing at it
            # are inserted and committed: a crash leaves at worst an orphan file, never a dangling row.
            try:
                archive_file = archive.write_archive(raw_dir, batch.batch_id, now.date(), raw)
            except _PATH_IN_THE_WAY as exc:
                # A copy for re-extraction whose path is blocked (a file where its folder belongs, a permission) must
                # not stop every load: the articles are stored, these pages' HTML is not kept
                # (article_provenance.has_raw_html says so), and each batch says it until the path is mended. Other
                # errors (a full disk, an I/O error) fail the load as before: the batch stays staged, nothing lost.
                result.raw_not_archived += len(raw)
                log.error("raw HTML of %d new pages not archived: %s; their articles are loaded without it. Move "
                          "away what stands at %s and later pages are kept again", len(raw), describe(exc), raw_dir)
            else:
                _insert(conn, "insert or replace", "raw_archive", [
                    {"url": r["url"], "fetched_at": r["fetched_at"], "archive_file": archive_file,
                     "bytes": len(r["html"])} for r in raw
                ])
        if stories is not None and stories.enabled:
            # After dedup, in the same transaction: a crash loses no placement, and copies know their original.
            items, urls = _story_items(docs, verdicts, now)
            result.stories = storystore.place(conn, items, urls, StorySettings.from_config(stories), now,
                                              batch.run_id)
        pages = [dict(p, outcome=outcome.get(p["url"], p["outcome"])) for p in batch.rows("page_fetches")]
        _insert(conn, "insert or replace", "page_fetches", pages)
        pause_point("load")  # crash tests: killed here, inside the open transaction
    if seq:
        # Not after every batch: a refresh cost a tenth of a 64-article load, while reading the few hundred
        # articles a cache is behind at most from the tables' newest row groups adds ~0.03 s to a lookup
        # (0.087 s against 0.060 s at 1M stored, benchmarks/results/2026-12-03-dedup-1m.md).
        keycache.safe_refresh(conn, min_behind=settings.cache_refresh_articles)
    result.verdicts = verdicts
    return result

