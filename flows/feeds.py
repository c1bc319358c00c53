"""Feed parsing: RSS/Atom/RDF bytes to entries, with every real-world oddity either handled or named."""

from __future__ import annotations

import calendar
import hashlib
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import feedparser

from flows.urls import normalise_url

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
# feedparser resolves entities itself; DOCTYPE-declared entities are the only expansion vector left, and a
# feed has no business declaring any. Removing the internal subset defuses billion-laughs and XXE payloads.
_DOCTYPE = re.compile(rb"<!DOCTYPE[^>\[]*(\[.*?\])?\s*>", re.S | re.I)


@dataclass(frozen=True)
class FeedEntry:
    feed: str
    guid: str  # the entry's id, else its link, else a hash of title and summary
    url: str | None  # normalised absolute link to the article page
    title: str | None
    summary: str | None
    published_at: datetime | None
    author: str | None


@dataclass(frozen=True)
class ParsedFeed:
    entries: tuple[FeedEntry, ...]
    title: str | None
    error: str | None  # set when the body is not a usable feed
    warning: str | None  # a parse problem the entries survived (feedparser's bozo)
    ttl_seconds: int | None


def plain_text(value: str | None) -> str | None:
    """Tags stripped, entities (even double-escaped ones) unescaped, whitespace collapsed."""
    if not value:
        return None
    text = _TAG.sub(" ", value)
    for _ in range(2):
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = _TAG.sub(" ", unescaped)
    text = _SPACE.sub(" ", text).strip()
    return text or None


def _when(entry: feedparser.FeedParserDict) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            try:
                return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
            except (OverflowError, ValueError):
                continue
    return None


def _ttl(parsed: feedparser.FeedParserDict) -> int | None:
    raw = parsed.feed.get("ttl")
    try:
        return int(raw) * 60 if raw is not None else None
    except (TypeError, ValueError):
        return None


def _defuse(body: bytes) -> bytes:
    head, sep, tail = body.partition(b"<!DOCTYPE")
    if not sep:
        return body
    return head + _DOCTYPE.sub(b"", sep + tail, count=1)


def parse_feed(body: bytes, url: str, feed_name: str) -> ParsedFeed:
    """Parse a feed body fetched from `url`. Never fetches anything: feedparser only ever sees bytes."""
    parsed = feedparser.parse(
        _defuse(body.lstrip()),
        response_headers={"content-location": url},
        sanitize_html=True,
        resolve_relative_uris=True,
    )
    bozo = parsed.get("bozo_exception")
    if not parsed.entries:
        if not parsed.get("version"):
            reason = f"{type(bozo).__name__}: {bozo}" if bozo else "no RSS, Atom or RDF root element"
            return ParsedFeed((), None, f"not a feed ({reason})", None, None)
        return ParsedFeed((), plain_text(parsed.feed.get("title")), None,
                          f"{type(bozo).__name__}: {bozo}" if bozo else None, _ttl(parsed))

    entries: list[FeedEntry] = []
    seen: set[str] = set()
    for e in parsed.entries:
        link = None
        for candidate in (e.get("link"), *(lk.get("href") for lk in e.get("links", []))):
            link = normalise_url(candidate or "", url)
            if link:
                break
        guid = (e.get("id") or "").strip() or None
        if link is None and guid:
            link = normalise_url(guid, url)  # an id that is a permalink stands in for a missing link
        title = plain_text(e.get("title"))
        summary = plain_text(e.get("summary") or e.get("description"))
        if guid is None:
            guid = link or hashlib.sha1(f"{title}\x1f{summary}".encode()).hexdigest()
        key = link or guid
        if key in seen:  # the same story listed twice in one feed
            continue
        seen.add(key)
        entries.append(FeedEntry(
            feed=feed_name, guid=guid, url=link, title=title, summary=summary,
            published_at=_when(e), author=plain_text(e.get("author")),
        ))
    return ParsedFeed(
        tuple(entries), plain_text(parsed.feed.get("title")), None,
        f"{type(bozo).__name__}: {bozo}" if bozo else None, _ttl(parsed),
    )
