"""Per-feed state after each fetch: conditional-GET validators, failures, backoff, next allowed fetch."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from flows.core.sections import HealthSettings
from flows.core.settings import FeedConfig
from flows.core.urls import redact
from flows.feeds.parse import ParsedFeed
from flows.web.fetch import FetchResult, retry_after

_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.I)


def due(state: dict[str, Any] | None, now: datetime, feed: FeedConfig | None = None) -> tuple[bool, str | None]:
    """Whether a feed may be fetched now, and why not. A feed whose configured URL changed starts afresh."""
    if not state or (feed is not None and state.get("configured_url") != redact(feed.url)):
        return True, None
    if state.get("disabled"):
        return False, f"disabled: {state.get('disabled_reason')}"
    nxt = state.get("next_fetch_at")
    if nxt is not None and nxt > now:
        return False, f"backing off until {nxt:%Y-%m-%d %H:%M} UTC"
    return True, None


def _interval(result: FetchResult, parsed: ParsedFeed | None, settings: HealthSettings) -> float | None:
    """The feed's own polling hint (Cache-Control max-age or <ttl>), within the configured bounds."""
    hints = []
    m = _MAX_AGE.search(result.headers.get("cache-control", ""))
    if m:
        hints.append(int(m.group(1)))
    if parsed and parsed.ttl_seconds:
        hints.append(parsed.ttl_seconds)
    if not hints:
        return None
    return float(min(max(max(hints), settings.min_interval_seconds), settings.max_interval_seconds))


def next_state(prev: dict[str, Any] | None, feed: FeedConfig, result: FetchResult, parsed: ParsedFeed | None,
               error: str | None, detail: str | None, body_hash: str | None, now: datetime,
               settings: HealthSettings) -> dict[str, Any]:
    """The feed's row in `feeds` after this fetch. `error` is set when the fetch or the parse failed."""
    prev = prev or {}
    if prev.get("configured_url") != redact(feed.url):
        prev = {}  # a new URL in the config: earlier failures, validators and disabling belonged to the old one
    state: dict[str, Any] = {
        "feed": feed.name,
        "configured_url": redact(feed.url),
        "url": prev.get("url") or redact(feed.url),
        "tags": list(feed.tags),
        "title": (parsed.title if parsed else None) or prev.get("title"),
        "etag": prev.get("etag"),
        "last_modified": prev.get("last_modified"),
        "body_hash": prev.get("body_hash"),
        "last_fetch_at": now,
        "last_success_at": prev.get("last_success_at"),
        "last_status": result.status,
        "last_error": prev.get("last_error"),
        "consecutive_failures": prev.get("consecutive_failures") or 0,
        "next_fetch_at": None,
        "disabled": False,
        "disabled_reason": None,
        "updated_at": now,
    }
    if result.permanent_url and not error:
        state["url"] = redact(result.permanent_url)
    if error is None:
        state.update(last_success_at=now, last_error=None, consecutive_failures=0)
        if result.status == 304:  # a 304 may carry fresh validators; keep the old ones when it does not
            state.update(etag=result.headers.get("etag") or state["etag"],
                         last_modified=result.headers.get("last-modified") or state["last_modified"])
        else:
            state.update(etag=result.headers.get("etag"), last_modified=result.headers.get("last-modified"),
                         body_hash=body_hash or prev.get("body_hash"))
        interval = _interval(result, parsed, settings)
        if interval:
            state["next_fetch_at"] = now + timedelta(seconds=interval)
        return state

    failures = state["consecutive_failures"] + 1
    state.update(consecutive_failures=failures, last_error=f"{error}: {detail}" if detail else error)
    if result.status == 410:
        state.update(disabled=True, disabled_reason=f"410 Gone at {now:%Y-%m-%d %H:%M} UTC; change the feed's URL "
                                                     "in the config to fetch it again")
        return state
    wait = min(settings.backoff_base_seconds * 2 ** (failures - 1), settings.backoff_max_seconds)
    if result.status in (429, 503):
        hinted = retry_after(result.headers.get("retry-after"), now)
        if hinted is not None:
            wait = min(max(hinted, 0), settings.backoff_max_seconds)
    state["next_fetch_at"] = now + timedelta(seconds=wait)
    return state
