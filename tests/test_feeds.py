"""parse_feed on every oddity real feeds carry, and on hostile XML. Pure: bytes in, entries out.

Covers: flows.feeds.parse
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from faultserver import _BILLION_LAUGHS, _XXE

from flows.feeds.parse import defuse, parse_feed, to_utf8

BASE = "http://news.test/feed/"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "feeds"


def _rss(items: str, decl: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:
    return f"{decl}<rss version='2.0'><channel><title>T</title>{items}</channel></rss>"


def test_whitespace_before_declaration_and_relative_links() -> None:
    body = ("\n\n  " + _rss("<item><title>A</title><link>/a?utm_source=x</link></item>")).encode()
    parsed = parse_feed(body, BASE, "f")
    assert parsed.error is None and parsed.entries[0].url == "http://news.test/a?utm_source=x"  # as published
    assert parsed.entries[0].key == "http://news.test/a"  # the key drops the tracker (issue 22)


def test_utf16_with_bom_and_leading_whitespace() -> None:
    text = "  \n" + _rss("<item><title>Grüße</title><link>http://news.test/g</link></item>",
                         '<?xml version="1.0" encoding="utf-16"?>')
    for body in ("\ufeff" + text).encode("utf-16-le"), text.encode("utf-16-be"), text.encode("utf-16"):
        parsed = parse_feed(body, BASE, "f")
        assert [e.title for e in parsed.entries] == ["Grüße"], body[:8]


def test_wrong_declared_encoding_is_detected() -> None:
    body = _rss("<item><title>Президент встретился с министрами</title><link>http://news.test/r</link>"
                "<description>Новости дня из Москвы и регионов</description></item>").encode("koi8-r")
    parsed = parse_feed(body, BASE, "f")
    assert parsed.entries[0].title == "Президент встретился с министрами"
    assert "declared encoding utf-8" in (parsed.warning or "")
    cp = _rss("<item><title>Привет мир, это новости</title><link>http://news.test/c</link></item>",
              '<?xml version="1.0" encoding="windows-1251"?>').encode("cp1251")
    assert parse_feed(cp, BASE, "f").entries[0].title == "Привет мир, это новости"


def test_entries_without_guid_link_or_date_and_duplicates() -> None:
    items = ("<item><title>No link</title><description>Only a summary</description></item>"
             "<item><title>Dup</title><link>http://news.test/d</link></item>"
             "<item><title>Dup again</title><link>http://news.test/d#frag</link></item>"
             "<item><title>Bad date</title><link>http://news.test/e</link><pubDate>lundi 3 mars</pubDate></item>")
    parsed = parse_feed(_rss(items).encode(), BASE, "f")
    by_title = {e.title: e for e in parsed.entries}
    assert set(by_title) == {"No link", "Dup", "Bad date"}  # the duplicate link is listed once
    assert by_title["No link"].url is None and len(by_title["No link"].guid) == 40
    assert by_title["No link"].summary == "Only a summary"
    assert by_title["Bad date"].published_at is None


def test_html_and_double_escaped_entities_in_titles() -> None:
    item = "<item><title>&amp;lt;b&amp;gt;Big&amp;lt;/b&amp;gt; &amp;amp; news</title><link>/x</link></item>"
    assert parse_feed(_rss(item).encode(), BASE, "f").entries[0].title == "Big & news"


def test_billion_laughs_and_xxe_do_nothing() -> None:
    for payload in (_BILLION_LAUGHS, _XXE):
        start = time.monotonic()
        parsed = parse_feed(payload.replace("{{BASE}}", "http://127.0.0.1:9").encode(), BASE, "f")
        assert time.monotonic() - start < 5
        text = " ".join(f"{e.title} {e.summary}" for e in parsed.entries)
        assert len(parsed.entries) == 1 and "lollol" not in text and "root:" not in text
    utf16 = _BILLION_LAUGHS.replace('version="1.0"', 'version="1.0" encoding="utf-16"').encode("utf-16")
    assert b"ENTITY" not in defuse(to_utf8(utf16)[0])  # no encoding trick gets a DOCTYPE past the defusing


def test_quadratic_blowup_is_defused() -> None:
    body = _rss("<item><title>x</title><link>/q</link><description>" + "&big;" * 5000 + "</description></item>",
                '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY big "' + "A" * 10000 + '">\n]>')
    for data in (body.encode(), body.replace('"1.0"', '"1.0" encoding="utf-16"', 1).encode("utf-16")):
        parsed = parse_feed(data, BASE, "f")
        assert len(parsed.entries[0].summary or "") < 100_000


def test_not_feeds_are_named() -> None:
    html = b"<!doctype html><html><head><link rel='alternate' type='application/atom+xml' href='/atom'></head>"
    assert parse_feed(html, BASE, "f").error == "not a feed: an HTML page, not a feed; it advertises a feed at " \
                                               "http://news.test/atom"
    assert parse_feed(b"", BASE, "f").error == "not a feed: an empty body"
    assert "JSON without" in (parse_feed(b'{"a": 1}', BASE, "f").error or "")
    assert parse_feed(b"\x89PNG\r\n\x1a\n\x00\x00", BASE, "f").error


def test_json_feed() -> None:
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "home_page_url": "http://news.test/",
           "items": [{"id": 1, "url": "/j1", "title": "<b>One</b>", "content_html": "<p>Body</p>",
                      "date_published": "2026-03-02T10:00:00+01:00", "authors": [{"name": "Ana"}]},
                     {"id": "2", "content_text": "no link"}, "junk"]}
    parsed = parse_feed(json.dumps(doc).encode(), BASE, "f")
    one, two = parsed.entries
    assert (one.url, one.title, one.summary, one.author) == ("http://news.test/j1", "One", "Body", "Ana")
    assert one.published_at is not None and one.published_at.hour == 9 and one.guid == "1"
    assert two.url is None and two.guid == "2"


def test_ttl_is_read() -> None:
    assert parse_feed(_rss("<ttl>30</ttl><item><link>/a</link></item>").encode(), BASE, "f").ttl_seconds == 1800


@pytest.mark.skipif(not CORPUS.exists(), reason="shared feed corpus not present")
def test_corpus_sample_never_crashes() -> None:
    """A slice of the shared corpus (the full run is benchmarks/feeds_corpus.py): parsed or named, never raised."""
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "MANIFEST.json")[::25]
    for path in files:
        parsed = parse_feed(path.read_bytes(), "http://127.0.0.1/", "f")
        assert parsed.error is None or parsed.error.startswith("not a feed: "), path


@pytest.mark.parametrize(("published", "kept"), [("Mon, 01 Jan 2099 10:00:00 GMT", False),
                                                 ("Sat, 31 Dec 9999 23:59:59 GMT", False),
                                                 ("Sun, 06 Dec 2026 08:00:00 GMT", True),
                                                 ("Mon, 01 Jan 0001 00:00:00 GMT", False),
                                                 ("Sun, 31 Dec 1899 12:00:00 GMT", False),
                                                 ("Mon, 01 Jan 1900 00:00:00 GMT", True),
                                                 (None, False)])
def test_a_feed_date_far_past_the_fetch_is_not_the_articles_publication_day(published: str | None,
                                                                           kept: bool) -> None:
    """A feed that dates an entry years ahead (a wrong year, say) would, as the article's day, end every report
    window on that day. More than a day after the fetch it is ignored: the article is dated by its fetch (or by its
    page, which trafilatura never dates past today). A date within the day ahead (time zones) is kept; one before
    1900 is not (a placeholder: "0001-01-01" made the stories' window reach below year 1 and stopped every load)."""
    from datetime import UTC, datetime, timedelta

    from flows.core.settings import Settings
    from flows.run.documents import build_doc, plausible_date

    date_tag = f"<pubDate>{published}</pubDate>" if published else ""
    parsed = parse_feed(_rss(f"<item><title>A</title><link>/a</link><description>Some words of a summary."
                             f"</description>{date_tag}</item>").encode(), BASE, "f")
    [entry] = parsed.entries
    assert (entry.published_at is not None) == (published is not None)  # the parser keeps what the feed says
    doc, _row = build_doc(entry, None, Settings())  # no page fetched: the feed's summary is the text
    assert doc is not None
    assert (doc.published_at == entry.published_at and doc.published_source == "feed") if kept else (
        doc.published_at is None and doc.published_source is None)
    fetched = datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert plausible_date(fetched + timedelta(hours=23), fetched) == fetched + timedelta(hours=23)
    assert plausible_date(fetched + timedelta(hours=25), fetched) is None
