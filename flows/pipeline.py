"""The ingest steps as plain functions: fetch feeds, pick new entries, build documents, tag, stage, load.

No Prefect here: flows/flow.py wraps these as tasks. CPU-heavy work (extraction, signatures, NER) runs in a
process pool; downloads run in threads with a per-host bound.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from multiprocessing import get_context
from typing import Any

import duckdb
import httpx

from flows import dedup, entities, extract, health, staging, warehouse
from flows.feeds import FeedEntry, ParsedFeed, parse_feed
from flows.fetch import FetchResult, fetch, is_feed_type, is_page_type, make_client
from flows.load import LoadResult, decide, load_batch
from flows.politeness import HostGate
from flows.robots import MAX_ROBOTS_BYTES
from flows.seeds import Seed, read_seeds
from flows.settings import FeedConfig, Settings
from flows.urls import host_of, redact, scrub

FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
               "text/xml;q=0.9, */*;q=0.5")
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
_HTML_TYPES = ("", "text/html", "application/xhtml+xml", "text/plain", "application/xml", "text/xml")


@dataclass
class RunStats:
    """Counts for the `runs` row and the run summary artifact."""

    feeds_total: int = 0
    feeds_ok: int = 0
    feeds_not_modified: int = 0
    feeds_failed: int = 0
    feeds_skipped: int = 0
    entries_seen: int = 0
    entries_new: int = 0
    pages_fetched: int = 0
    pages_failed: int = 0
    articles_new: int = 0
    fallbacks: int = 0
    duplicates_exact: int = 0
    duplicates_near: int = 0
    entity_mentions: int = 0
    batches_staged: int = 0

    def add_load(self, result: LoadResult) -> None:
        self.articles_new += result.new
        self.duplicates_exact += result.exact
        self.duplicates_near += result.near
        self.entity_mentions += result.mentions

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


@dataclass
class FeedsOutcome:
    entries: list[FeedEntry]
    fetch_rows: list[dict[str, Any]]
    state_rows: list[dict[str, Any]]


def now_utc() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- warehouse reads (brief, tolerant of locks)

def _read(settings: Settings, read: Callable[[Any], Any]) -> Any:
    """`read(conn)` on the live warehouse; on the published snapshot when the live file stays locked; None when
    neither can be read. The snapshot may be a run behind: good enough for hints, never for decisions (the
    loader decides against the live file)."""
    wh = settings.warehouse
    try:
        with warehouse.connect(wh, wait=min(5.0, wh.lock_wait_seconds)) as conn:
            warehouse.migrate(conn)
            return read(conn)
    except warehouse.WarehouseLocked:
        pass
    if not (wh.snapshot and wh.snapshot_path.exists()):
        return None
    try:
        with warehouse.connect(wh, read_only=True, wait=0, path=wh.snapshot_path) as conn:
            return read(conn)
    except (warehouse.WarehouseError, duckdb.Error):
        return None


def read_feed_states(settings: Settings) -> dict[str, dict[str, Any]]:
    """Stored per-feed state; empty (so no conditional GET this time) when no copy of the warehouse is readable.

    Feeds last fetched by a run that died come without validators, so their entries are read again.
    """
    def read(conn: Any) -> dict[str, dict[str, Any]]:
        cur = conn.execute(warehouse.query("feed_states"))
        cols = [d[0] for d in cur.description]
        return {row[0]: dict(zip(cols, row, strict=True)) for row in cur.fetchall()}

    return _read(settings, read) or {}


def known_urls(settings: Settings, urls: list[str]) -> set[str] | None:
    """Which URLs are already stored; None when the warehouse is locked (then the loader sorts it out)."""
    if not urls:
        return set()
    return _read(settings, lambda conn: {
        r[0] for r in conn.execute(warehouse.query("known_urls"), {"urls": urls}).fetchall()
    })


def stored_seed_hashes(settings: Settings) -> dict[str, str] | None:
    return _read(settings, lambda conn: dict(
        conn.execute("select seed_file, seed_file_hash from articles where is_seed").fetchall()
    ))


# ---------------------------------------------------------------- feeds

def fetch_feeds(settings: Settings, feeds: list[FeedConfig], states: dict[str, dict[str, Any]], run_id: str,
                stats: RunStats, *, client: httpx.Client | None = None,
                log: Callable[[str], None] = lambda _m: None) -> FeedsOutcome:
    """Fetch and parse every due feed concurrently; one `feed_fetches` row per feed, whatever happened."""
    now = now_utc()
    entries: list[FeedEntry] = []
    fetch_rows: list[dict[str, Any]] = []
    state_rows: list[dict[str, Any]] = []

    def one(feed: FeedConfig) -> tuple[FeedConfig, FetchResult | None, str | None]:
        prev = states.get(feed.name)
        ok, why = health.due(prev, now, feed)
        if not ok:
            return feed, None, why
        same = bool(prev) and prev.get("configured_url") == redact(feed.url)
        url = prev["url"] if same and prev.get("url") else feed.url
        # The stored URL is redacted; credentials only ever come from the config.
        if "***@" in url:
            url = feed.url
        result = FetchResult(url=url, final_url=url, status=None, body=None)
        for attempt in range(settings.fetch.retries + 1):
            result = fetch(c, url, settings.fetch, max_bytes=settings.fetch.max_feed_bytes,
                           etag=prev.get("etag") if same else None,
                           last_modified=prev.get("last_modified") if same else None, accept=FEED_ACCEPT,
                           accept_type=is_feed_type)
            if not _retryable(result) or attempt == settings.fetch.retries:
                break
            time.sleep(min(2.0 * 2**attempt, 10))  # transient network error: back off before retrying
        return feed, result, None

    with _client(settings, client) as c, ThreadPoolExecutor(max(1, min(8, len(feeds)))) as pool:
        for feed, result, skipped in pool.map(one, feeds):
            stats.feeds_total += 1
            prev = states.get(feed.name)
            base = {"fetch_id": f"{run_id}:{feed.name}", "run_id": run_id, "feed": feed.name,
                    "url": redact(result.url if result else feed.url), "fetched_at": now}
            if result is None:
                stats.feeds_skipped += 1
                log(f"feed {feed.name!r} skipped: {skipped}")
                fetch_rows.append({**base, "outcome": "skipped", "error": "skipped", "error_detail": skipped,
                                   "entries": 0, "new_entries": 0})
                continue
            parsed: ParsedFeed | None = None
            error, detail, outcome = result.error, result.detail, "ok"
            body_hash = None
            if result.not_modified:
                outcome = "not_modified"
            elif result.ok and result.body is not None:
                body_hash = hashlib.sha256(result.body).hexdigest()
                if prev and prev.get("body_hash") == body_hash and prev.get("configured_url") == redact(feed.url):
                    outcome = "unchanged"
                else:
                    parsed = parse_feed(result.body, result.final_url, feed.name)
                    if parsed.error:
                        error, detail = "not_a_feed", scrub(parsed.error)
            elif error is None:
                error, detail = f"http_{result.status}", f"unexpected HTTP {result.status}"
            if error:
                outcome = "failed"
                stats.feeds_failed += 1
                log(f"feed {feed.name!r} failed: {error}: {detail}")
            elif outcome in ("not_modified", "unchanged"):
                stats.feeds_not_modified += 1
            else:
                stats.feeds_ok += 1
            found = list(parsed.entries) if parsed and not parsed.error else []
            entries += found
            stats.entries_seen += len(found)
            fetch_rows.append({
                **base, "final_url": redact(result.final_url), "http_status": result.status,
                "bytes": len(result.body) if result.body else 0, "duration_ms": result.elapsed_ms,
                "entries": len(found), "new_entries": 0, "outcome": outcome, "error": error,
                "error_detail": detail if error else (scrub(parsed.warning) if parsed and parsed.warning else None),
            })
            state_rows.append(health.next_state(prev, feed, result, parsed, error, detail, body_hash, now,
                                                settings.health))
    return FeedsOutcome(entries, fetch_rows, state_rows)


def _retryable(result: FetchResult) -> bool:
    """A transient failure worth another try in this run. A server that hit the total time limit or asked us
    to come back later (Retry-After) is left to the backoff instead."""
    if result.error == "timeout":
        return "total limit" not in (result.detail or "")
    if result.status == 503:
        return "retry-after" not in result.headers
    return result.error == "connection_error" or result.status in (502, 504)


@contextmanager
def _client(settings: Settings, client: httpx.Client | None) -> Iterator[httpx.Client]:
    if client is not None:
        yield client
        return
    with make_client(settings.fetch) as c:
        yield c


def entry_url(entry: FeedEntry) -> str:
    """The entry's article key: its link, or a stand-in for an entry that has none."""
    if entry.url:
        return entry.url
    digest = hashlib.sha1(f"{entry.feed}\x1f{entry.guid}".encode()).hexdigest()[:20]
    return f"urn:newsflow:entry:{digest}"


def select_new(settings: Settings, entries: list[FeedEntry], fetch_rows: list[dict[str, Any]],
               max_per_feed: int) -> list[FeedEntry]:
    """Entries whose article is not stored yet, one per URL, at most `max_per_feed` per feed."""
    unique: dict[str, FeedEntry] = {}
    for e in entries:
        unique.setdefault(entry_url(e), e)
    known = known_urls(settings, list(unique)) or set()
    per_feed: dict[str, int] = {}
    out = []
    for url, e in unique.items():
        if url in known or per_feed.get(e.feed, 0) >= max_per_feed:
            continue
        per_feed[e.feed] = per_feed.get(e.feed, 0) + 1
        out.append(e)
    for row in fetch_rows:
        row["new_entries"] = per_feed.get(row["feed"], 0)
    return out


def entry_rows(entries: list[FeedEntry], run_id: str) -> list[dict[str, Any]]:
    now = now_utc()
    return [{"feed": e.feed, "guid": e.guid, "url": entry_url(e), "title": e.title, "summary": e.summary,
             "published_at": e.published_at, "author": e.author, "first_seen_at": now, "first_run_id": run_id}
            for e in entries]


# ---------------------------------------------------------------- pages

def download(settings: Settings, entries: list[FeedEntry], client: httpx.Client | None = None, *,
             gate: HostGate | None = None) -> Iterator[tuple[FeedEntry, FetchResult | None]]:
    """Fetch each entry's page, yielding as pages arrive. Entries without a link yield None.

    robots.txt is checked first when `respect_robots` is on: a refused page comes back as a `robots_disallowed`
    failure without being requested. Pass one `gate` to several calls to keep host delays and robots.txt across
    batches.
    """
    fs = settings.fetch
    gate = gate or HostGate(fs.per_host_concurrency, fs.min_host_delay)

    def robots_txt(url: str) -> FetchResult:
        with gate.slot(host_of(url)):
            return fetch(c, url, fs, max_bytes=MAX_ROBOTS_BYTES, accept="text/plain, */*;q=0.5")

    def one(entry: FeedEntry) -> tuple[FeedEntry, FetchResult | None]:
        if not entry.url:
            return entry, None
        if fs.respect_robots:
            refused = gate.robots(robots_txt, fs.user_agent).check(entry.url)
            if refused:
                return entry, FetchResult(url=entry.url, final_url=entry.url, status=None, body=None,
                                          error="robots_disallowed", detail=refused)
        with gate.slot(host_of(entry.url)):
            return entry, fetch(c, entry.url, fs, max_bytes=fs.max_page_bytes, accept=PAGE_ACCEPT,
                                accept_type=is_page_type)

    with _client(settings, client) as c, ThreadPoolExecutor(fs.concurrency) as pool:
        # Interleave hosts so one slow host does not hold every thread.
        ordered = _round_robin(entries)
        yield from pool.map(one, ordered)


def _round_robin(entries: list[FeedEntry]) -> list[FeedEntry]:
    by_host: dict[str, list[FeedEntry]] = {}
    for e in entries:
        by_host.setdefault(host_of(e.url or ""), []).append(e)
    out: list[FeedEntry] = []
    queues = list(by_host.values())
    while queues:
        out += [q.pop(0) for q in queues]
        queues = [q for q in queues if q]
    return out


def build_doc(entry: FeedEntry, result: FetchResult | None, settings: Settings
              ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Extract one page (or fall back to the feed summary): the staged document and its `page_fetches` row.

    Runs in a worker process. The document is None only when there is no text at all to keep.
    """
    fetched_at = result.fetched_at if result else now_utc()
    page = {"url": entry_url(entry), "feed": entry.feed, "http_status": result.status if result else None,
            "final_url": redact(result.final_url) if result else None,
            "content_type": result.content_type if result else None,
            "bytes": len(result.body) if result and result.body else 0,
            "duration_ms": result.elapsed_ms if result else None, "error": None, "error_detail": None,
            "fetched_at": fetched_at}
    found: extract.Extracted | None = None
    reason: str | None = None
    if result is None:
        reason = "no_link: the entry has no article link"
    elif not result.ok:
        reason = f"{result.error}: {result.detail}"
    elif result.content_type not in _HTML_TYPES:
        reason = f"wrong_content_type: {result.content_type} is not a web page"
    else:
        found = extract.extract(result.body or b"", result.final_url, settings.extract)
        if found is None:
            reason = "empty_extraction: trafilatura found no article text"
        elif len(found.text) < settings.extract.min_text_chars and (entry.summary or "") and \
                len(entry.summary or "") > len(found.text):
            reason = f"short_extraction: {len(found.text)} characters, under min_text_chars"
            found = None
    if found is not None:
        text, body_source, page["outcome"] = found.text, "extracted", "extracted"
    else:
        page["error"], _, page["error_detail"] = (reason or "").partition(": ")
        text = entry.summary or ""
        body_source, page["outcome"] = "feed_summary", "fallback" if text else "failed"
        if not text:
            return None, page

    published_at, published_source = entry.published_at, "feed" if entry.published_at else None
    if published_at is None and found and found.published:
        try:
            published_at = datetime.combine(date.fromisoformat(found.published[:10]), datetime.min.time(), UTC)
            published_source = "page"
        except ValueError:
            pass
    sig = dedup.signature(text, settings.dedup)
    raw = None
    if settings.warehouse.keep_raw_html and result is not None and result.ok and result.body:
        raw = zlib.compress(result.body, 1)  # level 1: a third of level 6's CPU, 15% larger
    doc = {
        "url": entry_url(entry), "feed": entry.feed, "entry_guid": entry.guid,
        "title": (found.title if found else None) or entry.title,
        "author": (found.author if found else None) or entry.author,
        "published_at": published_at, "published_source": published_source, "fetched_at": fetched_at,
        "language": found.language if found else None, "site_name": found.site_name if found else None,
        "canonical_url": found.canonical_url if found else None,
        "final_url": redact(result.final_url) if result else None,
        "http_status": result.status if result else None,
        "text": text, "body_source": body_source, "fallback_reason": reason if found is None else None,
        "is_seed": False, "seed_file": None, "seed_file_hash": None,
        "extractor": extract.EXTRACTOR if found else None,
        "extractor_version": extract.EXTRACTOR_VERSION if found else None,
        "extractor_options": json.dumps({**extract.extractor_options(settings.extract), "pass": found.method})
        if found else None,
        "raw_html": raw,
    }
    doc.update(_sig_columns(sig))
    return doc, page


def _sig_columns(sig: dedup.Signature) -> dict[str, Any]:
    return {"text_hash": sig.text_hash, "shingles": sig.shingles.view("int64").tolist(),
            "buckets": sig.buckets.tolist(), "samples": sig.samples.tolist()}


def seed_doc(seed: Seed, settings: Settings) -> dict[str, Any]:
    sig = dedup.signature(seed.text, settings.dedup)
    return {
        "url": seed.url, "feed": None, "entry_guid": None, "title": seed.text.split("\n", 1)[0][:200],
        "author": None, "published_at": datetime.combine(seed.published, datetime.min.time(), UTC),
        "published_source": "seed", "fetched_at": None, "language": None, "site_name": None,
        "canonical_url": None, "final_url": None, "http_status": None, "text": seed.text,
        "body_source": "seed", "fallback_reason": None, "is_seed": True, "seed_file": seed.name,
        "seed_file_hash": seed.file_hash, "extractor": None, "extractor_version": None,
        "extractor_options": None, "raw_html": None, **_sig_columns(sig),
    }


def tag_texts(texts: list[str], settings: Settings) -> tuple[list[list[dict[str, Any]]], str]:
    """Entities of each text (runs in a worker process), and the pipeline's name and version."""
    nlp = entities.load_pipeline(settings.entities.pipeline)
    tagged = entities.tag(nlp, texts, settings.entities.labels, settings.entities.max_chars)
    return [[vars(m) for m in ms] for ms in tagged], entities.pipeline_version(nlp)


# ---------------------------------------------------------------- workers

class InlineExecutor(Executor):
    """Runs submitted work in the calling process (workers = 1, or tiny batches)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[Any]:
        return iter([fn(*args) for args in zip(*iterables, strict=True)])


def make_pool(settings: Settings) -> Executor:
    n = settings.worker_count()
    if n <= 1:
        return InlineExecutor()
    # spawn, not fork: the parent runs threads (HTTP, Prefect's API client) that fork would copy mid-state.
    # No max_tasks_per_child: on Python 3.11 a pool that replaces its workers can hang once they have all exited
    # (seen here: a 2,112-article benchmark stopped with no workers left).
    pool = ProcessPoolExecutor(n, mp_context=get_context("spawn"))
    # Start the workers and load spaCy now, while the parent fetches the feeds.
    for _ in range(n):
        pool.submit(warm_up, settings)
    return pool


def warm_up(settings: Settings) -> None:
    """Load the NER pipeline in a worker (cached per process)."""
    entities.load_pipeline(settings.entities.pipeline)


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def tag_docs(pool: Executor, docs: list[dict[str, Any]], settings: Settings, workers: int = 0) -> None:
    """Add `mentions` and `ner_pipeline` to each document, tagged in chunks of 8 so no worker idles on an
    uneven split. (`workers` is accepted for older callers and ignored.)"""
    if not docs:
        return
    parts = chunks([d["text"] for d in docs], 8)
    results = list(pool.map(tag_texts, parts, [settings] * len(parts)))
    tagged = [m for part, _version in results for m in part]
    for doc, mentions in zip(docs, tagged, strict=True):
        doc["mentions"] = mentions
        doc["ner_pipeline"] = results[0][1]


def precheck(settings: Settings, docs: list[dict[str, Any]], *, before: list[dict[str, Any]] | None = None
             ) -> list[bool]:
    """Which documents the warehouse (or the `before` documents, staged but not loaded yet) already has a copy
    of, so they skip NER. The loader decides for real."""
    if not docs:
        return []
    before = before or []
    try:
        with warehouse.connect(settings.warehouse, wait=min(2.0, settings.warehouse.lock_wait_seconds)) as conn:
            with warehouse.transaction(conn):
                verdicts = decide(conn, before + docs, settings.dedup)
            return [v.status != "new" for v in verdicts[len(before):]]
    except warehouse.WarehouseLocked:
        return [False] * len(docs)


def store(settings: Settings, batch: staging.Batch) -> LoadResult | None:
    """Stage the batch durably, then load it after any batch staged before it; None when the warehouse stayed
    locked (the batch stays staged for the next run). The result counts every batch loaded by this call."""
    wh = settings.warehouse
    backlog = staging.pending(wh.staging_dir)
    path = staging.write(batch, wh.staging_dir)
    warehouse.pause_point("staged")
    # Behind a batch that already found the lock held, wait briefly: the run's last batch, or the next run,
    # loads the backlog in order.
    wait = min(2.0, wh.lock_wait_seconds) if backlog else None
    total = LoadResult()
    loaded = _load_in_order(settings, [*backlog, path], total, wait=wait)
    return total if loaded else None


def _load_in_order(settings: Settings, paths: list[Any], total: LoadResult, *, wait: float | None = None
                   ) -> bool:
    """Load the staged batches oldest first over one connection, each in its own transaction, removing each
    once committed. False when the warehouse stayed locked (nothing was loaded)."""
    if not paths:
        return True
    try:
        with warehouse.connect(settings.warehouse, wait=wait) as conn:
            warehouse.migrate(conn)
            for path in sorted(set(paths)):
                result = load_batch(conn, staging.read(path), settings.dedup,
                                    raw_dir=settings.warehouse.raw_dir)
                # Killed between the commit and this removal, the batch is loaded again: a no-op.
                staging.remove(path)
                for name in ("new", "exact", "near", "known", "mentions"):
                    setattr(total, name, getattr(total, name) + getattr(result, name))
    except warehouse.WarehouseLocked:
        return False
    return True


def load_staged(settings: Settings, path: Any, batch: staging.Batch | None = None) -> LoadResult | None:
    """Load one staged batch; None when the warehouse stayed locked."""
    total = LoadResult()
    return total if _load_in_order(settings, [path], total) else None


def load_pending(settings: Settings, stats: RunStats | None = None) -> tuple[int, int]:
    """Load batches earlier runs left staged, oldest first. Returns (loaded, still staged).

    Leftovers of interrupted staging writes are removed too.
    """
    staging.remove_partial(settings.warehouse.staging_dir)
    paths = staging.pending(settings.warehouse.staging_dir)
    total = LoadResult()
    if not _load_in_order(settings, paths, total):
        return 0, len(paths)
    if stats:
        stats.add_load(total)
    return len(paths), 0


def seeds_to_load(settings: Settings) -> tuple[list[Seed], list[str]]:
    """Seed files that are new or changed since they were loaded, and errors for unreadable ones."""
    seeds, errors = read_seeds(settings.pipeline.seeds_dir)
    stored = stored_seed_hashes(settings) or {}
    return [s for s in seeds if stored.get(s.name) != s.file_hash], errors


def mark_abandoned(settings: Settings, run_id: str) -> None:
    """Runs still marked running died without finishing (this run holds the run lock, so none is alive)."""
    try:
        with warehouse.connect(settings.warehouse, wait=min(5.0, settings.warehouse.lock_wait_seconds)) as conn:
            warehouse.migrate(conn)
            conn.execute(warehouse.query("mark_abandoned"), {"run_id": run_id})
    except warehouse.WarehouseLocked:
        pass  # the next run that finds the warehouse free marks them
