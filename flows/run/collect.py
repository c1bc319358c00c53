"""Stage 1, feeds: fetch every due feed, parse it, and pick the entries whose article is not stored yet.

One `feed_fetches` row and one `feeds` state row per fetched feed, whatever happened: an unexpected exception
inside one feed's fetch or parse becomes that feed's row with the code `internal_error` and backs the feed off
like any failure, and the other feeds go on. Feed requests go through the run's `HostGate`, so the per-host
bound and delay hold for an outlet's dozens of section feeds as for its article pages.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from flows.core.errors import INTERNAL_ERROR, describe, failpoint
from flows.core.settings import MAX_SHARDS, FeedConfig, Settings
from flows.core.stats import RunStats
from flows.core.urls import host_of, interleave_hosts, redact, scrub
from flows.feeds import health
from flows.feeds.parse import FeedEntry, ParsedFeed, entry_url, parse_feed
from flows.run.workers import threads
from flows.warehouse.runstate import known_urls
from flows.web.fetch import FetchResult, client_for, failed, fetch, is_feed_type
from flows.web.politeness import HostGate

FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
               "text/xml;q=0.9, */*;q=0.5")
logger = logging.getLogger("newsflow.feeds")


@dataclass
class FeedsOutcome:
    entries: list[FeedEntry]
    fetch_rows: list[dict[str, Any]]
    state_rows: list[dict[str, Any]]


def fetch_feeds(settings: Settings, feeds: list[FeedConfig], states: dict[str, dict[str, Any]], run_id: str,
                stats: RunStats, *, client: httpx.Client | None = None, gate: HostGate | None = None,
                log: Callable[[str], None] = lambda _m: None,
                progress: Callable[[str, int], None] = lambda _event, _n: None) -> FeedsOutcome:
    """Fetch and parse every due feed concurrently; one `feed_fetches` row per feed, whatever happened.

    `progress("feed", 1)` is called as each feed is done.
    """
    now = datetime.now(UTC)
    fs = settings.fetch
    gate = gate or HostGate.for_settings(fs)
    out = FeedsOutcome([], [], [])

    def one(feed: FeedConfig) -> tuple[FeedConfig, FetchResult | None, str | None]:
        try:
            return _fetch_one(settings, c, gate, feed, states.get(feed.name), now)
        except Exception as exc:  # one feed's bug must not stop the others
            logger.exception("feed %r: unexpected error while fetching", feed.name)
            return feed, failed(redact(feed.url), INTERNAL_ERROR, describe(exc)), None

    with client_for(fs, client) as c, threads(max(1, min(fs.concurrency, len(feeds)))) as pool:
        # Started round robin over hosts, so threads do not queue behind one outlet's politeness delay while
        # other hosts wait (40 feeds over 20 hosts: 1.6 s in feed order); read back in the config's order.
        started = {id(feed): pool.submit(one, feed) for feed in interleave_hosts(feeds)}
        for feed, result, skipped in (started[id(f)].result() for f in feeds):
            stats.feeds_total += 1
            prev = states.get(feed.name)
            try:
                fetch_row, state_row, found = _outcome(settings, feed, prev, result, skipped, run_id, now)
            except Exception as exc:
                logger.exception("feed %r: unexpected error while parsing", feed.name)
                fetch_row, state_row, found = _internal_error(settings, feed, prev, result, run_id, now, exc)
            if fetch_row["outcome"] == "skipped":
                stats.feeds_skipped += 1
                log(f"feed {feed.name!r} skipped: {fetch_row['error_detail']}")
            elif fetch_row["outcome"] == "failed":
                stats.feeds_failed += 1
                log(f"feed {feed.name!r} failed: {fetch_row['error']}: {fetch_row['error_detail']}")
            elif fetch_row["outcome"] in ("not_modified", "unchanged"):
                stats.feeds_not_modified += 1
            else:
                stats.feeds_ok += 1
            out.entries += found
            stats.entries_seen += len(found)
            out.fetch_rows.append(fetch_row)
            if state_row is not None:
                out.state_rows.append(state_row)
            progress("feed", 1)
    return out


def _fetch_one(settings: Settings, client: httpx.Client, gate: HostGate, feed: FeedConfig,
               prev: dict[str, Any] | None, now: datetime) -> tuple[FeedConfig, FetchResult | None, str | None]:
    failpoint("fetch_feed", feed.name)
    ok, why = health.due(prev, now, feed)
    if not ok:
        return feed, None, why
    same = _same_url(prev, feed)
    url = prev["url"] if same and prev and prev.get("url") else feed.url
    # The stored URL is redacted; credentials only ever come from the config.
    if "***@" in url:
        url = feed.url
    fs = settings.fetch
    result = failed(url, INTERNAL_ERROR, "not fetched")
    for attempt in range(fs.retries + 1):
        with gate.slot(host_of(url)):
            result = fetch(client, url, fs, max_bytes=fs.max_feed_bytes,
                           etag=prev.get("etag") if same and prev else None,
                           last_modified=prev.get("last_modified") if same and prev else None,
                           accept=FEED_ACCEPT, accept_type=is_feed_type)
        if not _retryable(result) or attempt == fs.retries:
            break
        time.sleep(min(2.0 * 2**attempt, 10))  # transient network error: back off before retrying
    return feed, result, None


def _outcome(settings: Settings, feed: FeedConfig, prev: dict[str, Any] | None, result: FetchResult | None,
             skipped: str | None, run_id: str, now: datetime
             ) -> tuple[dict[str, Any], dict[str, Any] | None, list[FeedEntry]]:
    """The feed's `feed_fetches` row, its next state row (None when it was not fetched) and its entries."""
    base = _base_row(feed, result, run_id, now)
    if result is None:
        return {**base, "outcome": "skipped", "error": "skipped", "error_detail": skipped}, None, []
    parsed: ParsedFeed | None = None
    error, detail, outcome = result.error, result.detail, "ok"
    body_hash = None
    if result.not_modified and not _validated(prev, feed):
        # A 304 to a request that asked for no comparison is a server's error: taken as "not modified", the feed
        # would show `ok` for ever without having been read once.
        error, detail = "http_304", "304 Not Modified to a request without an ETag or Last-Modified to compare"
    elif result.not_modified:
        outcome = "not_modified"
    elif result.ok and result.body is not None:
        body_hash = hashlib.sha256(result.body).hexdigest()
        if prev and prev.get("body_hash") == body_hash and _same_url(prev, feed):
            outcome = "unchanged"
        else:
            failpoint("parse_feed", feed.name)
            parsed = parse_feed(result.body, result.final_url, feed.name)
            if parsed.error:
                error, detail = "not_a_feed", scrub(parsed.error)
    elif error is None:
        error, detail = f"http_{result.status}", f"unexpected HTTP {result.status}"
    if error:
        outcome = "failed"
    found = list(parsed.entries) if parsed and not parsed.error else []
    row = {**base, "entries": len(found), "outcome": outcome, "error": error,
           "error_detail": detail if error else (scrub(parsed.warning) if parsed and parsed.warning else None)}
    state = health.next_state(prev, feed, result, parsed, error, detail, body_hash, now, settings.health)
    return row, state, found


def _same_url(prev: dict[str, Any] | None, feed: FeedConfig) -> bool:
    """Whether the stored state is of the feed's configured URL: its moved URL and validators are used only then."""
    return bool(prev) and prev.get("configured_url") == redact(feed.url)


def _validated(prev: dict[str, Any] | None, feed: FeedConfig) -> bool:
    """Whether _fetch_one sent the stored validators (it does only for the URL they were stored for)."""
    return _same_url(prev, feed) and bool(prev and (prev.get("etag") or prev.get("last_modified")))


def _base_row(feed: FeedConfig, result: FetchResult | None, run_id: str, now: datetime) -> dict[str, Any]:
    return {"fetch_id": f"{run_id}:{feed.name}", "run_id": run_id, "feed": feed.name,
            "url": redact(result.url if result else feed.url), "fetched_at": now,
            "final_url": redact(result.final_url) if result else None,
            "http_status": result.status if result else None,
            "bytes": len(result.body) if result and result.body else 0,
            "duration_ms": result.elapsed_ms if result else None, "entries": 0, "new_entries": 0}


def _internal_error(settings: Settings, feed: FeedConfig, prev: dict[str, Any] | None, result: FetchResult | None,
                    run_id: str, now: datetime, exc: Exception
                    ) -> tuple[dict[str, Any], dict[str, Any] | None, list[FeedEntry]]:
    """The rows of a feed whose handling raised: a failure like any other, so the feed is backed off."""
    detail = describe(exc)
    result = failed(redact(feed.url), INTERNAL_ERROR, detail) if result is None else result
    row = {**_base_row(feed, result, run_id, now), "outcome": "failed", "error": INTERNAL_ERROR,
           "error_detail": detail}
    try:
        state = health.next_state(prev, feed, result, None, INTERNAL_ERROR, detail, None, now, settings.health)
    except Exception:
        logger.exception("feed %r: no state row could be built", feed.name)
        state = None
    return row, state, []


def _retryable(result: FetchResult) -> bool:
    """A transient failure worth another try in this run. A server that hit the total time limit or asked us
    to come back later (Retry-After) is left to the backoff instead."""
    if result.error == "timeout":
        return "total limit" not in (result.detail or "")
    if result.status == 503:
        return "retry-after" not in result.headers
    return result.error == "connection_error" or result.status in (502, 504)


def select_new(settings: Settings, entries: list[FeedEntry], fetch_rows: list[dict[str, Any]],
               max_per_feed: int, *, read_only: bool = False,
               state_rows: list[dict[str, Any]] | None = None) -> list[FeedEntry]:
    """Entries whose article is not stored yet, one per URL, at most `max_per_feed` per feed (`read_only`: the
    warehouse is read as a stage-only run reads it, runstate.known_urls). A feed that had more keeps no body hash
    in its `state_rows` row: its next fetch is parsed again even if the feed has not changed, and takes the next
    ones (with the hash, an unchanged feed is not parsed, and those entries waited for the feed to change)."""
    unique: dict[str, FeedEntry] = {}
    for e in entries:
        unique.setdefault(entry_url(e), e)
    known = known_urls(settings, list(unique), read_only=read_only) or set()
    per_feed: dict[str, int] = {}
    capped: set[str] = set()
    out = []
    for url, e in unique.items():
        if url in known:
            continue
        if per_feed.get(e.feed, 0) >= max_per_feed:
            capped.add(e.feed)
            continue
        per_feed[e.feed] = per_feed.get(e.feed, 0) + 1
        out.append(e)
    for row in fetch_rows:
        row["new_entries"] = per_feed.get(row["feed"], 0)
    for row in state_rows or ():
        if row["feed"] in capped:
            row["body_hash"] = None
    return out


def entry_rows(entries: list[FeedEntry], run_id: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [{"feed": e.feed, "guid": e.guid, "url": entry_url(e), "link": e.url, "title": e.title, "summary": e.summary,
             "published_at": e.published_at, "author": e.author, "first_seen_at": now, "first_run_id": run_id}
            for e in entries]


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` (shard K of N, 1-based, N at most MAX_SHARDS) as (K, N); ValueError with the expected form
    otherwise."""
    k, sep, n = text.strip().partition("/")
    try:
        shard = (int(k), int(n))
    except ValueError:
        shard = (0, 0)
    if not sep or not 1 <= shard[0] <= shard[1] <= MAX_SHARDS:
        raise ValueError(f"shard {text!r}: expected K/N with 1 <= K <= N <= {MAX_SHARDS}, e.g. 1/4")
    return shard


def shard_of(url: str, n: int) -> int:
    """The 1-based shard (of `n`) a feed URL belongs to: a stable hash of its host, so every feed of one host
    lands in one shard and the per-host politeness bound still holds inside it."""
    digest = hashlib.blake2b(host_of(url).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n + 1


def in_shard(feeds: list[FeedConfig], shard: tuple[int, int] | None) -> list[FeedConfig]:
    """The feeds of shard (K, N); all of them for None."""
    if shard is None:
        return list(feeds)
    k, n = shard
    return [f for f in feeds if shard_of(f.url, n) == k]
