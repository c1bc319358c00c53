"""robots.txt for article pages, by RFC 9309: fetched once per origin and cached, read with protego (own group
else `*`, longest match wins, allow wins a tie, `*` and `$` wildcards, Crawl-delay); 4xx means everything is
allowed and an unreachable file (5xx, network failure, over MAX_ROBOTS_BYTES) means nothing is.

Reading (`Rules`) is kept apart from fetching (`RobotsCache`), which takes a fetch function so that robots.txt
goes through the same guard, limits and per-host politeness as the pages.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from protego import Protego

from flows.web.fetch import FetchResult

MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309 asks parsers to read at least 500 KiB


def agent_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against: 'newsflow' from 'newsflow/0.1 (+...)'."""
    return re.split(r"[/\s]", user_agent.strip(), maxsplit=1)[0].lower() or "*"


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, without credentials: the scope of one robots.txt."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower().rsplit("@", 1)[-1], "", "", ""))


@dataclass(frozen=True, eq=False)
class Rules:
    """What one origin's robots.txt says for one agent: the parsed file, or a blanket answer and its reason."""

    parser: Protego | None = None
    agent: str = "*"
    note: str | None = None  # why everything is allowed or disallowed without rules (status, failure)
    allow_all: bool | None = None  # set when the file could not be used at all

    @classmethod
    def parse(cls, text: str, agent: str) -> Rules:
        """The rules for `agent` from a robots.txt body."""
        try:
            parser = Protego.parse(text.removeprefix("\ufeff"))  # RFC 9309 allows a UTF-8 BOM
            # Match the group and index its rules now, so threads sharing the parser only ever read it.
            parser.can_fetch("/", agent)
        except Exception as err:  # a parser bug must refuse one origin, not end the run
            return cls(agent=agent, allow_all=False,
                       note=f"robots.txt unreadable ({type(err).__name__}: {err}): all disallowed")
        return cls(parser, agent)

    def allowed(self, url: str) -> bool:
        if self.allow_all is not None:
            return self.allow_all
        return self.parser is None or self.parser.can_fetch(url, self.agent)

    @property
    def crawl_delay(self) -> float | None:
        """Seconds between requests asked by the agent's group (`Crawl-delay`), None when it asks nothing."""
        return self.parser.crawl_delay(self.agent) if self.parser is not None else None


def rules_from(result: FetchResult, agent: str) -> Rules:
    """The rules a robots.txt fetch result implies, RFC 9309 section 2.3.1."""
    if result.ok and result.body is not None:
        return Rules.parse(result.body.decode("utf-8", "replace"), agent)
    if result.status is not None and 400 <= result.status < 500:
        return Rules(agent=agent, allow_all=True, note=f"robots.txt unavailable (HTTP {result.status}): all allowed")
    why = f"HTTP {result.status}" if result.error and result.error.startswith("http_") else result.error
    return Rules(agent=agent, allow_all=False, note=f"robots.txt unreachable ({why}): all disallowed")


class RobotsCache:
    """robots.txt rules per origin, each fetched at most once however many threads ask at the same time."""

    def __init__(self, get: Callable[[str], FetchResult], user_agent: str) -> None:
        self._get = get
        self.agent = agent_token(user_agent)
        self._lock = threading.Lock()
        self._rules: dict[str, Rules] = {}
        self._origin_locks: dict[str, threading.Lock] = {}

    def rules_for(self, url: str) -> Rules:
        origin = origin_of(url)
        with self._lock:
            lock = self._origin_locks.setdefault(origin, threading.Lock())
        with lock:
            if origin not in self._rules:
                self._rules[origin] = rules_from(self._get(origin + "/robots.txt"), self.agent)
            return self._rules[origin]

    def check(self, url: str) -> str | None:
        """None when `url` may be fetched, else the reason it may not."""
        rules = self.rules_for(url)
        if rules.allowed(url):
            return None
        return rules.note or f"robots.txt disallows this path for user agent {self.agent!r}"
