"""Stage 2, pages: download each new entry's article page, politely, yielding pages as they arrive.

An unexpected exception while fetching one page becomes that page's failure (`internal_error`), never the end
of the run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx

from flows.core.errors import INTERNAL_ERROR, describe, failpoint
from flows.core.settings import Settings
from flows.core.urls import host_of, interleave_hosts
from flows.feeds.parse import FeedEntry
from flows.run.workers import threads
from flows.web.fetch import FetchResult, client_for, failed, fetch, is_page_type
from flows.web.politeness import HostGate
from flows.web.robots import MAX_ROBOTS_BYTES

PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
logger = logging.getLogger("newsflow.pages")


def download(settings: Settings, entries: list[FeedEntry], client: httpx.Client | None = None, *,
             gate: HostGate | None = None) -> Iterator[tuple[FeedEntry, FetchResult | None]]:
    """Fetch each entry's page, yielding as pages arrive. Entries without a link yield None.

    robots.txt is checked first when `respect_robots` is on: a refused page comes back as a `robots_disallowed`
    failure without being requested. Pass one `gate` to several calls to keep host delays and robots.txt across
    batches.
    """
    fs = settings.fetch
    gate = gate or HostGate.for_settings(fs)

    def robots_txt(url: str) -> FetchResult:
        with gate.slot(host_of(url)):
            return fetch(c, url, fs, max_bytes=MAX_ROBOTS_BYTES, accept="text/plain, */*;q=0.5")

    def one(entry: FeedEntry) -> tuple[FeedEntry, FetchResult | None]:
        if not entry.url:
            return entry, None
        try:
            failpoint("fetch_page", entry.url)
            if fs.respect_robots:
                refused = gate.admit(entry.url, robots_txt, fs.user_agent)
                if refused:
                    return entry, failed(entry.url, "robots_disallowed", refused)
            with gate.slot(host_of(entry.url)):
                return entry, fetch(c, entry.url, fs, max_bytes=fs.max_page_bytes, accept=PAGE_ACCEPT,
                                    accept_type=is_page_type)
        except Exception as exc:  # one page's bug must not stop the others
            logger.exception("page %s: unexpected error while fetching", entry.url)
            return entry, failed(entry.url, INTERNAL_ERROR, describe(exc))

    with client_for(fs, client) as c, threads(fs.concurrency) as pool:
        yield from pool.map(one, interleave_hosts(entries))

