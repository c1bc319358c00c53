"""Feed parsing: RSS/Atom/RDF and JSON Feed bytes to entries, with every real-world oddity either handled or named.

Never fetches anything: feedparser only ever sees bytes, already decoded to UTF-8 and with any DOCTYPE internal
subset removed, so entity tricks (billion laughs, quadratic blowup, XXE) have nothing to expand.
"""

from __future__ import annotations

import calendar
import codecs
import hashlib
import html
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import charset_normalizer
import feedparser

from flows.urls import normalise_url

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
# The whole DOCTYPE with its internal subset, wherever the subset's `]` falls.
_DOCTYPE = re.compile(rb"<!DOCTYPE(?:[^\[>]*\[.*?\]\s*>|[^>]*>)", re.S | re.I)
# What may precede a DOCTYPE: whitespace, the XML declaration, processing instructions and comments.
_PROLOG = re.compile(rb"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.S)
_DECLARATION = re.compile(rb"^<\?xml[^>]*?\?>", re.S)
_DECLARED = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""", re.S)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_FEED_LINK = re.compile(
    rb"""<link\b[^>]*\btype\s*=\s*["']application/(?:rss|atom|feed)\+(?:xml|json)["'][^>]*>""", re.I)
_HREF = re.compile(rb"""\bhref\s*=\s*["']([^"']+)["']""", re.I)


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
    warning: str | None  # a parse problem the entries survived (feedparser's bozo, an encoding fix)
    ttl_seconds: int | None
    encoding: str | None = None  # the encoding the body was read as


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


def to_utf8(body: bytes) -> tuple[bytes, str | None, str | None]:
    """The body as UTF-8 with a matching XML declaration and no leading whitespace; its source encoding; and a
    warning when the declared encoding was wrong.

    Order: a byte-order mark, then BOM-less UTF-16/32, then the declared encoding, then UTF-8, then detection.
    """
    text: str | None = None
    encoding: str | None = None
    warning: str | None = None
    for bom, codec in _BOMS:
        if body.startswith(bom):
            text, encoding = _decode(body[len(bom):], codec), codec
            break
    if text is None:
        for prefix, codec in ((b"\x00\x00\x00", "utf-32-be"), (b"\x00", "utf-16-be")):
            if body.startswith(prefix):
                text, encoding = _decode(body, codec), codec
                break
        else:
            if body[1:4] == b"\x00\x00\x00":
                text, encoding = _decode(body, "utf-32-le"), "utf-32-le"
            elif body[1:2] == b"\x00":
                text, encoding = _decode(body, "utf-16-le"), "utf-16-le"
    if text is None:
        stripped = body.lstrip()
        m = _DECLARED.match(stripped)
        declared = m.group(1).decode("ascii").lower() if m else None
        for codec in dict.fromkeys(c for c in (declared, "utf-8") if c):
            if codec.startswith(("utf-16", "utf-32")):
                continue  # declared UTF-16 yet readable as 8-bit text: the declaration is wrong
            text = _decode(stripped, codec)
            if text is not None:
                encoding = codec
                break
        if text is None:
            best = charset_normalizer.from_bytes(stripped).best()
            if best is not None:
                text, encoding = str(best), best.encoding
            else:
                text, encoding = stripped.decode("utf-8", "replace"), "utf-8"
            warning = f"declared encoding {declared or 'utf-8 (default)'} does not fit the bytes; read as {encoding}"
        elif declared and encoding != declared:
            warning = f"declared encoding {declared} does not fit the bytes; read as {encoding}"
    data = text.lstrip("\ufeff \t\r\n").encode("utf-8")
    declaration = b"<?xml version='1.0' encoding='utf-8'?>"
    data = _DECLARATION.sub(declaration, data, count=1) if _DECLARATION.match(data) else data
    return data, encoding, warning


def _decode(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def defuse(data: bytes) -> bytes:
    """The document without its DOCTYPE: a feed has no business declaring entities, so none get expanded."""
    prolog = _PROLOG.match(data)
    start = prolog.end() if prolog else 0
    doctype = _DOCTYPE.match(data, start)
    return data[:start] + data[doctype.end():] if doctype else data


def _when(entry: Any) -> datetime | None:
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


def _not_a_feed(data: bytes, url: str) -> str:
    """Why a body that parsed to nothing is not a feed, naming what it looks like."""
    head = data[:65536]
    if re.search(rb"<html\b|<!doctype html", head, re.I):
        for tag in _FEED_LINK.findall(head):
            href = _HREF.search(tag)
            link = normalise_url(html.unescape(href.group(1).decode("utf-8", "replace")), url) if href else None
            if link:
                return f"an HTML page, not a feed; it advertises a feed at {link}"
        return "an HTML page, not a feed"
    if not head.strip():
        return "an empty body"
    return "no RSS, Atom, RDF or JSON Feed root element"


def parse_feed(body: bytes, url: str, feed_name: str) -> ParsedFeed:
    """Parse a feed body fetched from `url` (the base for relative links)."""
    if body.lstrip()[:1] in (b"{", b"["):
        return parse_json_feed(body, url, feed_name)
    data, encoding, enc_warning = to_utf8(body)
    data = defuse(data)
    parsed = feedparser.parse(
        data,
        response_headers={"content-location": url, "content-type": "application/xml; charset=utf-8"},
        sanitize_html=True,
        resolve_relative_uris=True,
    )
    bozo = parsed.get("bozo_exception")
    warning = "; ".join(w for w in (enc_warning, f"{type(bozo).__name__}: {bozo}" if bozo else None) if w) or None
    if not parsed.entries:
        if not parsed.get("version"):
            return ParsedFeed((), None, f"not a feed: {_not_a_feed(data, url)}", warning, None, encoding)
        return ParsedFeed((), plain_text(parsed.feed.get("title")), None, warning, _ttl(parsed), encoding)
    entries = _entries(
        ((e.get("id"), e.get("link"), [lk.get("href") for lk in e.get("links", [])], e.get("title"),
          e.get("summary") or e.get("description"), _when(e), e.get("author")) for e in parsed.entries),
        url, feed_name)
    return ParsedFeed(entries, plain_text(parsed.feed.get("title")), None, warning, _ttl(parsed), encoding)


def _entries(items: Any, url: str, feed_name: str) -> tuple[FeedEntry, ...]:
    """FeedEntry per (id, link, other links, title, summary, published, author), one per story."""
    out: list[FeedEntry] = []
    seen: set[str] = set()
    for raw_id, raw_link, links, raw_title, raw_summary, published, raw_author in items:
        link = None
        for candidate in (raw_link, *links):
            link = normalise_url(candidate if isinstance(candidate, str) else "", url)
            if link:
                break
        guid = str(raw_id).strip() if raw_id not in (None, "") else None
        if link is None and guid and guid.lower().startswith(("http://", "https://")):
            link = normalise_url(guid)  # an id that is a permalink stands in for a missing link
        title = plain_text(raw_title)
        summary = plain_text(raw_summary)
        if guid is None:
            guid = link or hashlib.sha1(f"{title}\x1f{summary}".encode()).hexdigest()
        key = link or guid
        if key in seen:  # the same story listed twice in one feed
            continue
        seen.add(key)
        out.append(FeedEntry(feed=feed_name, guid=guid, url=link, title=title, summary=summary,
                             published_at=published, author=plain_text(raw_author)))
    return tuple(out)


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        parsed = feedparser._parse_date(value)  # RFC 822 and the other spellings feedparser knows
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC) if parsed else None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def parse_json_feed(body: bytes, url: str, feed_name: str) -> ParsedFeed:
    """A JSON Feed (https://jsonfeed.org, versions 1 and 1.1); anything else JSON is named as not a feed."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return ParsedFeed((), None, f"not a feed: invalid JSON ({exc})", None, None, "utf-8")
    if not isinstance(doc, dict) or "jsonfeed.org/version" not in str(doc.get("version", "")):
        return ParsedFeed((), None, "not a feed: JSON without a jsonfeed.org version", None, None, "utf-8")
    items = doc.get("items")
    if not isinstance(items, list):
        return ParsedFeed((), plain_text(doc.get("title")), "not a feed: JSON Feed without an items list",
                          None, None, "utf-8")
    base = doc.get("home_page_url") or doc.get("feed_url") or url
    rows = []
    for item in items:
        if not isinstance(item, dict):
            continue
        authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else [])
        author = next((a.get("name") for a in authors if isinstance(a, dict) and a.get("name")), None)
        rows.append((item.get("id"), item.get("url"), [item.get("external_url")], item.get("title"),
                     item.get("summary") or item.get("content_html") or item.get("content_text"),
                     _iso(item.get("date_published") or item.get("date_modified")), author))
    title = doc.get("title") if isinstance(doc.get("title"), str) else None
    return ParsedFeed(_entries(rows, base if isinstance(base, str) else url, feed_name), plain_text(title),
                      None, None, None, "utf-8")


def entry_url(entry: FeedEntry) -> str:
    """The entry's article key: its link, or a stand-in for an entry that has none."""
    if entry.url:
        return entry.url
    digest = hashlib.sha1(f"{entry.feed}\x1f{entry.guid}".encode()).hexdigest()[:20]
    return f"urn:newsflow:entry:{digest}"
