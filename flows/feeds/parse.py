"""Feed parsing: RSS/Atom/RDF and JSON Feed bytes to entries, with every real-world oddity either handled or named.

Never fetches anything: feedparser only ever sees bytes, already decoded to UTF-8 and with any DOCTYPE internal
subset removed, so entity tricks (billion laughs, quadratic blowup, XXE) have nothing to expand.
"""

from __future__ import annotations

import calendar
import codecs
import email.utils
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import charset_normalizer
import feedparser

from flows.core.urls import normalise_url, published_link

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
_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


@dataclass(frozen=True)
class FeedEntry:
    feed: str
    guid: str  # the entry's id, else its link's key, else a hash of title and summary
    url: str | None  # the link to the article page as published, made absolute: what is fetched and stored
    title: str | None
    summary: str | None
    published_at: datetime | None
    author: str | None
    # The link's key (flows/core/urls.py normalise_url): entry dedup, article ids, the syndication view.
    key: str | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", normalise_url(self.url) if self.url else None)


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


def valid_charrefs(data: bytes) -> bytes:
    """Numeric character references to characters XML does not allow (beyond U+10FFFF, surrogates, most control
    characters) as U+FFFD: feedparser's fallback parser raises on the first two, and the rest break strict mode."""
    return _CHARREF.sub(_charref, data)


def _charref(m: re.Match[bytes]) -> bytes:
    hexa, dec = m.groups()
    digits = (hexa or dec).lstrip(b"0") or b"0"
    if len(digits) <= 8:
        code = int(digits, 16 if hexa else 10)
        if code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF:
            return m.group(0)
    return b"&#xFFFD;"


def _when(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            try:
                return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _ttl(parsed: feedparser.FeedParserDict) -> int | None:
    raw = parsed.feed.get("ttl")
    try:
        minutes = int(raw) if raw is not None else 0
    except (TypeError, ValueError):
        return None
    return minutes * 60 if minutes > 0 else None


def _not_a_feed(data: bytes, url: str) -> str:
    """Why a body that parsed to nothing is not a feed, naming what it looks like."""
    head = data[:65536]
    if re.search(rb"<html\b|<!doctype html", head, re.I):
        for tag in _FEED_LINK.findall(head):
            href = _HREF.search(tag)
            link = published_link(html.unescape(href.group(1).decode("utf-8", "replace")), url) if href else None
            if link:
                return f"an HTML page, not a feed; it advertises a feed at {link}"
        return "an HTML page, not a feed"
    if not head.strip():
        return "an empty body"
    return "no RSS, Atom, RDF or JSON Feed root element"


# The prefix of the error a bug in this module turns into, so a test can tell a bug from a named oddity.
INTERNAL_ERROR = "parser error: "


def parse_feed(body: bytes, url: str, feed_name: str) -> ParsedFeed:
    """Parse a feed body fetched from `url` (the base for relative links). Never raises: what is not a usable
    feed comes back with `error` set."""
    try:
        return _parse(body, url, feed_name)
    except (RecursionError, MemoryError) as exc:
        return ParsedFeed((), None, f"not a feed: nested too deeply to parse ({type(exc).__name__})",
                          None, None, None)
    except Exception as exc:  # one odd feed must never end the run; tests/test_properties.py hunts these
        return ParsedFeed((), None, f"{INTERNAL_ERROR}{type(exc).__name__}: {exc}", None, None, None)


def _parse(body: bytes, url: str, feed_name: str) -> ParsedFeed:
    data, encoding, enc_warning = to_utf8(body)
    if data.lstrip()[:1] in (b"{", b"["):  # after decoding, so a UTF-16 JSON Feed is recognised too
        parsed = parse_json_feed(data, url, feed_name)
        return ParsedFeed(parsed.entries, parsed.title, parsed.error, parsed.warning or enc_warning,
                          parsed.ttl_seconds, encoding)
    data = valid_charrefs(defuse(data))
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
        guid = (raw_id.strip() or None) if isinstance(raw_id, str) else None
        # The first candidate that is an http(s) link with a key; an id that is a permalink stands in for a
        # missing link.
        permalink = guid if guid and guid.lower().startswith(("http://", "https://")) else None
        link = next((c for c in (_published(raw_link, url), *(_published(lk, url) for lk in links),
                                 _published(permalink, None)) if c), None)
        link_key = normalise_url(link) if link else None
        title = plain_text(raw_title)
        summary = plain_text(raw_summary)
        if guid is None:
            guid = link_key or hashlib.sha1(f"{title}\x1f{summary}".encode()).hexdigest()
        key = link_key or guid
        if key in seen:  # the same story listed twice in one feed
            continue
        seen.add(key)
        out.append(FeedEntry(feed=feed_name, guid=guid, url=link, title=title, summary=summary,
                             published_at=published, author=plain_text(raw_author)))
    return tuple(out)


def _published(candidate: Any, base: str | None) -> str | None:
    """A candidate link as published (absolute), when it is http(s) and has a key."""
    link = published_link(candidate, base) if isinstance(candidate, str) else None
    return link if link and normalise_url(link) else None


def _iso(value: Any) -> datetime | None:
    """A JSON Feed date: RFC 3339 as the spec says, else RFC 822 as many generators write it."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    try:
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    except OverflowError:  # year 1 or 9999 shifted out of range by its offset
        return None


def _text(value: Any) -> str | None:
    """A JSON string field as text: numbers (ids, titles written as numbers) as their digits, lone surrogates
    (valid in JSON escapes, not in UTF-8) replaced; lists, objects, booleans and null as None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        return None
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _link(value: Any) -> str | None:
    """A JSON URL field: only a string is a link (a number resolved against the base would invent one)."""
    return _text(value) if isinstance(value, str) else None


def _first(*values: Any) -> str | None:
    return next((t for t in map(_text, values) if t and t.strip()), None)


def parse_json_feed(body: bytes, url: str, feed_name: str) -> ParsedFeed:
    """A JSON Feed (https://jsonfeed.org, versions 1 and 1.1); anything else JSON is named as not a feed.

    Every field is type-checked: a number, list, object or null where a string belongs is read as text or
    dropped, never raised on.
    """
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return ParsedFeed((), None, f"not a feed: invalid JSON ({exc})", None, None, "utf-8")
    if not isinstance(doc, dict) or "jsonfeed.org/version" not in str(doc.get("version", "")):
        return ParsedFeed((), None, "not a feed: JSON without a jsonfeed.org version", None, None, "utf-8")
    title = plain_text(_text(doc.get("title")))
    items = doc.get("items")
    if not isinstance(items, list):
        return ParsedFeed((), title, "not a feed: JSON Feed without an items list", None, None, "utf-8")
    base = next((b for b in (_link(doc.get("home_page_url")), _link(doc.get("feed_url")))
                 if b and normalise_url(b)), url)
    rows = []
    for item in items:
        if not isinstance(item, dict):
            continue
        authors = item.get("authors")
        authors = authors if isinstance(authors, list) else [item.get("author")]
        author = next((_text(a.get("name")) for a in authors if isinstance(a, dict) and _text(a.get("name"))),
                      None)
        rows.append((_text(item.get("id")), _link(item.get("url")), [_link(item.get("external_url"))],
                     _text(item.get("title")),
                     _first(item.get("summary"), item.get("content_html"), item.get("content_text")),
                     _iso(item.get("date_published")) or _iso(item.get("date_modified")), author))
    return ParsedFeed(_entries(rows, base, feed_name), title, None, None, None, "utf-8")


def entry_url(entry: FeedEntry) -> str:
    """The entry's article key: its link's key, or a stand-in for an entry that has none."""
    if entry.key:
        return entry.key
    digest = hashlib.sha1(f"{entry.feed}\x1f{entry.guid}".encode()).hexdigest()[:20]
    return f"urn:newsflow:entry:{digest}"
