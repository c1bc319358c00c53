"""Politeness per host: a bound on requests in flight, a minimum delay between their starts, robots.txt and its
Crawl-delay.

Feeds, robots.txt files and article pages all go through one `HostGate` per run, so an outlet that publishes
dozens of section feeds from one host is asked no faster than its article pages are.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flows.core.sections import FetchSettings
from flows.core.urls import host_of
from flows.web.fetch import FetchResult
from flows.web.robots import RobotsCache, origin_of

DEFAULT_MAX_CRAWL_DELAY: float = FetchSettings.model_fields["max_crawl_delay"].default


class HostGate:
    """At most `per_host` requests in flight to one host, and `delay` seconds between their starts (more when the
    host's robots.txt asks for a Crawl-delay, up to `max_crawl_delay`)."""

    def __init__(self, per_host: int, delay: float, *, max_crawl_delay: float = DEFAULT_MAX_CRAWL_DELAY) -> None:
        self.per_host, self.delay, self.max_crawl_delay = per_host, delay, max_crawl_delay
        self._lock = threading.Lock()
        self._sems: dict[str, threading.Semaphore] = {}
        self._next: dict[str, float] = {}  # the planned start of the next request to a host
        self._started: dict[str, float] = {}  # when the last request to a host actually started
        self._delays: dict[str, float] = {}
        self._robots: RobotsCache | None = None
        self._capped: dict[str, float] = {}  # origin -> the Crawl-delay it asked for, over the cap

    @classmethod
    def for_settings(cls, fs: FetchSettings) -> HostGate:
        """A gate with the limits of `[fetch]`."""
        return cls(fs.per_host_concurrency, fs.min_host_delay, max_crawl_delay=fs.max_crawl_delay)

    def robots(self, get: Callable[[str], FetchResult], user_agent: str) -> RobotsCache:
        """The robots.txt cache that lives as long as this gate (one run, or one batch)."""
        with self._lock:
            if self._robots is None:
                self._robots = RobotsCache(get, user_agent)
            return self._robots

    def admit(self, url: str, get: Callable[[str], FetchResult], user_agent: str) -> str | None:
        """None when robots.txt lets `url` be fetched, else the reason; applies the origin's Crawl-delay first."""
        robots = self.robots(get, user_agent)
        asked = robots.rules_for(url).crawl_delay
        if asked is not None:
            host = host_of(url)
            with self._lock:
                if asked > self.max_crawl_delay:
                    self._capped.setdefault(origin_of(url), asked)
                delay = min(asked, self.max_crawl_delay)
                if delay > self._delays.get(host, self.delay):
                    self._set_delay(host, delay)
        return robots.check(url)

    def crawl_delay_notes(self) -> list[str]:
        """One line per origin whose Crawl-delay was over `max_crawl_delay` and was capped, for the run's report."""
        with self._lock:
            return [f"{origin}: robots.txt Crawl-delay {asked:g} s capped at fetch.max_crawl_delay = "
                    f"{self.max_crawl_delay:g} s" for origin, asked in sorted(self._capped.items())]

    def set_delay(self, host: str, seconds: float) -> None:
        """Set one host's minimum delay (a robots.txt Crawl-delay); never below the configured one."""
        with self._lock:
            self._set_delay(host, seconds)

    def _set_delay(self, host: str, seconds: float) -> None:
        old = self._delays.get(host, self.delay)
        new = self._delays[host] = max(self.delay, seconds)
        if host in self._next:
            # The request already started (robots.txt itself) is spaced by the new delay too.
            self._next[host] += new - old

    def delay_for(self, host: str) -> float:
        with self._lock:
            return self._delays.get(host, self.delay)

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        with self._lock:
            sem = self._sems.setdefault(host, threading.Semaphore(self.per_host))
        with sem:
            with self._lock:
                start = max(time.monotonic(), self._next.get(host, 0.0))
                self._next[host] = start + self._delays.get(host, self.delay)
            pause = start - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # politeness delay between requests to one host
            self._space_from_last_start(host)
            yield

    def _space_from_last_start(self, host: str) -> None:
        # A sleep can overrun on a busy machine, so a request may start later than planned, and the next one,
        # planned from the first's planned start, less than the delay after it (seen: 0.28 s apart for 0.3).
        # The host sees the actual starts, so those are what is spaced.
        while True:
            with self._lock:
                now = time.monotonic()
                delay = self._delays.get(host, self.delay)
                earliest = self._started.get(host, -math.inf) + delay
                if now >= earliest:
                    self._started[host] = now
                    self._next[host] = max(self._next.get(host, 0.0), now + delay)
                    return
            time.sleep(earliest - now)
