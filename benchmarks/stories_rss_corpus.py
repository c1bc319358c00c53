"""The items of the second story evaluation: real news items with summaries, read by reference from a git snapshot.

The source is the public repository rumca-js/RSS-Link-Database-2023 (GPL-3.0), a bot that saved the entries of a few
hundred RSS feeds every day as JSON (`2023/MM/2023-MM-DD/<feed slug>_entries.json`: title, description, link, source
feed, date_published, language...), with `sources.json` naming each feed. The items are the publishers' text, so
they stay outside this repository: benchmarks/data/stories_rss/items.csv keeps, for each item, its key (sha256 of
its link, 16 hex), the file it was first seen in at a pinned commit (the plain JSON files; the repository's tip
replaced them with zips), the sha256 of its link and of its title and summary, so a changed or missing snapshot is
detected instead of silently scoring other text. benchmarks/data/stories_rss/README.md gives the selection rule;
`select()` below is that rule.

The snapshot is read from NEWSFLOW_STORIES_RSS_REPO (default /work/.mirror/rumca-js+RSS-Link-Database-2023/repo, a
bare git directory); `git clone --bare https://github.com/rumca-js/RSS-Link-Database-2023` gives one.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.stories_corpus import checked, git_output

DATA = Path(__file__).parent / "data" / "stories_rss"
REPO = "rumca-js/RSS-Link-Database-2023"
COMMIT = "08b89dd9bdbd20633c994bb4a74411f204225b0f"
DEFAULT_MIRROR = "/work/.mirror/rumca-js+RSS-Link-Database-2023/repo"
DAYS = ("2023-12-11", "2023-12-12", "2023-12-13", "2023-12-14")
PER_OUTLET_DAY = 8  # items kept per outlet and day (those with the smallest sha256 of their link)
MIN_SUMMARY = 40  # characters of summary an item needs

# The outlets kept (general world/national news in English) and their feeds; several feeds of one publisher are
# one outlet. Names are sources.json's titles, shortened to the publisher (NBC News's feed is titled "CNBC" there).
OUTLET_FEEDS: dict[str, tuple[str, ...]] = {
    "ABC News": ("http://feeds.abcnews.com/abcnews/topstories",),
    "Al Jazeera": ("https://www.aljazeera.com/xml/rss/all.xml",),
    "BBC": ("http://feeds.bbci.co.uk/news/rss.xml",),
    "Bloomberg": ("https://www.bloomberg.com/politics/feeds/site.xml",),
    "CBC": ("https://www.cbc.ca/webfeed/rss/rss-topstories", "https://www.cbc.ca/webfeed/rss/rss-canada"),
    "Channel News Asia": ("https://www.channelnewsasia.com/api/v1/rss-outbound-feed?_format=xml",),
    "Daily Mail": ("https://www.dailymail.co.uk/news/index.rss",),
    "Financial Times": ("https://www.ft.com/world?format=rss",),
    "Fox News": ("https://moxie.foxnews.com/google-publisher/latest.xml",),
    "Japan Today": ("https://japantoday.com/feed",),
    "Le Monde": ("https://www.lemonde.fr/en/rss/une.xml",),
    "NBC News": ("https://www.nbcnews.com/feed", "https://feeds.nbcnews.com/nbcnews/public/world"),
    "NPR": ("https://feeds.npr.org/1001/rss.xml",),
    "New York Times": ("https://rss.nytimes.com/services/xml/rss/nyt/HomePage.xml",
                       "https://rss.nytimes.com/services/xml/rss/nyt/World.xml"),
    "POLITICO Europe": ("https://www.politico.eu/feed",),
    "Sky News": ("http://feeds.skynews.com/feeds/rss/world.xml",),
    "South China Morning Post": ("https://www.scmp.com/rss/4/feed",),
    "TIME": ("https://time.com/feed",),
    "The Guardian": ("https://www.theguardian.com/rss", "https://www.theguardian.com/world/rss",
                     "https://www.theguardian.com/international/rss"),
    "The Hill": ("https://thehill.com/news/feed",),
    "The Moscow Times": ("https://www.themoscowtimes.com/rss/news",),
    "The Wall Street Journal": ("https://feeds.a.dj.com/rss/RSSWorldNews.xml",),
    "The Washington Post": ("https://feeds.washingtonpost.com/rss/world?itid=lk_inline_manual_36",),
    "Times of India": ("http://timesofindia.indiatimes.com/rssfeedstopstories.cms",),
}
FEED_OUTLET = {feed: outlet for outlet, feeds in OUTLET_FEEDS.items() for feed in feeds}
# An item is taken as English when its feed says so and its title or summary has one of these words (a feed marked
# English can carry another language: Channel News Asia's Malay items).
_ENGLISH = frozenset("the of and to in a is for on with that as by from at are was has have it an be will not its his "
                     "her their who after into against about over amid".split())
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class NewsItem:
    key: str           # sha256 of the item's link, first 16 hex digits
    title: str         # HTML stripped, whitespace normalised
    summary: str       # the feed's description, HTML stripped, whitespace normalised
    outlet: str
    first_seen: datetime  # date_published, UTC
    path: str          # the file it was first seen in
    link_sha256: str
    text_sha256: str   # of title + "\n" + summary, to detect a drift


def mirror() -> Path:
    return Path(os.environ.get("NEWSFLOW_STORIES_RSS_REPO", DEFAULT_MIRROR))


def _git(*args: str) -> str:
    return git_output(mirror(), REPO, COMMIT, "NEWSFLOW_STORIES_RSS_REPO", *args)


def clean(text: str | None) -> str:
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text or ""))).strip()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _utc(published: str | None, day: str) -> datetime:
    if not published:
        return datetime.fromisoformat(day).replace(tzinfo=UTC)
    when = datetime.fromisoformat(published.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _items_of(path: str) -> list[NewsItem]:
    """The kept feeds' English items with a summary in one snapshot file (no day or duplicate filter)."""
    out = []
    for entry in json.loads(_git("show", f"{COMMIT}:{path}")):
        outlet, link = FEED_OUTLET.get(entry.get("source") or ""), entry.get("link") or ""
        if outlet is None or not link or not (entry.get("language") or "").lower().startswith("en"):
            continue
        title, summary = clean(entry.get("title")), clean(entry.get("description"))
        words = re.findall(r"[a-z]+", f"{title} {summary}".lower())
        if not title or len(summary) < MIN_SUMMARY or _ENGLISH.isdisjoint(words):
            continue
        link_sha = _sha(link)
        out.append(NewsItem(link_sha[:16], title, summary, outlet, _utc(entry.get("date_published"), path[8:18]),
                            path, link_sha, _sha(f"{title}\n{summary}")))
    return out


def candidates(days: Sequence[str] = DAYS) -> list[NewsItem]:
    """Every kept item of the `days`' folders at its first sighting (folders by day, files by name), dated `days`."""
    seen: dict[str, NewsItem] = {}
    for day in days:
        for path in sorted(_git("ls-tree", "-r", "--name-only", COMMIT, f"2023/{day[5:7]}/{day}/").split()):
            if path.endswith("_entries.json"):
                for item in _items_of(path):
                    seen.setdefault(item.link_sha256, item)
    return [i for i in seen.values() if i.first_seen.date().isoformat() in days]


def select(items: list[NewsItem]) -> list[NewsItem]:
    """The selection rule: per outlet and UTC day, the PER_OUTLET_DAY items with the smallest link sha256 (a
    deterministic draw spread over the day, blind to the text); in publication order."""
    groups: dict[tuple[str, str], list[NewsItem]] = defaultdict(list)
    for item in items:
        groups[item.outlet, item.first_seen.date().isoformat()].append(item)
    chosen = [i for group in groups.values() for i in sorted(group, key=lambda i: i.link_sha256)[:PER_OUTLET_DAY]]
    return sorted(chosen, key=lambda i: (i.first_seen, i.key))


def load_items() -> list[NewsItem]:
    """The labelled items, read from the snapshot and checked against items.csv (one clear error on a drift)."""
    with (DATA / "items.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    found: dict[str, NewsItem] = {}
    for path in sorted({r["path"] for r in rows}):
        for item in _items_of(path):
            found.setdefault(item.key, item)
    return checked(rows, found, lambda item, row: item.link_sha256 == row["link_sha256"]
                   and item.text_sha256 == row["text_sha256"], REPO, COMMIT)
