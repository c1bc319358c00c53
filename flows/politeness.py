"""Politeness per host: a bound on requests in flight, a minimum delay between their starts, robots.txt.

Feeds, robots.txt files and article pages all go through one `HostGate` per run, so an outlet that publishes
dozens of section feeds from one host is asked no faster than its article pages are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flows.fetch import FetchResult
from flows.robots import RobotsCache


class HostGate:
    """At most `per_host` requests in flight to one host, and `delay` seconds between their starts."""

    def __init__(self, per_host: int, delay: float) -> None:
        self.per_host, self.delay = per_host, delay
        self._lock = threading.Lock()
        self._sems: dict[str, threading.Semaphore] = {}
        self._next: dict[str, float] = {}
        self._delays: dict[str, float] = {}
        self._robots: RobotsCache | None = None

    def robots(self, get: Callable[[str], FetchResult], user_agent: str) -> RobotsCache:
        """The robots.txt cache that lives as long as this gate (one run, or one batch)."""
        with self._lock:
            if self._robots is None:
                self._robots = RobotsCache(get, user_agent)
            return self._robots

    def set_delay(self, host: str, seconds: float) -> None:
        """Raise one host's minimum delay (a robots.txt Crawl-delay); never lowers the configured one."""
        with self._lock:
            self._delays[host] = max(self.delay, seconds)

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
            yield
