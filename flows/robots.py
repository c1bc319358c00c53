"""robots.txt for article pages, by RFC 9309: fetched once per origin and cached, longest match wins, allow wins a
tie, 4xx means everything is allowed and an unreachable file (5xx, network failure) means nothing is.

Pure parsing (`Rules.parse`) is kept apart from fetching (`RobotsCache`), which takes a fetch function so that
robots.txt goes through the same guard, limits and per-host politeness as the pages.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from flows.fetch import FetchResult

MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309 asks parsers to read at least 500 KiB


def agent_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against: 'newsflow' from 'newsflow/0.1 (+...)'."""
    return re.split(r"[/\s]", user_agent.strip(), maxsplit=1)[0].lower() or "*"


def _pattern(path: str) -> re.Pattern[str]:
    anchored = path.endswith("$")
    body = re.escape(path[:-1] if anchored else path).replace(r"\*", ".*")
    return re.compile(body + ("$" if anchored else ""), re.S)


@dataclass(frozen=True)
class Rules:
    """The allow/disallow rules of the group that applies to one user agent."""

    rules: tuple[tuple[bool, str, re.Pattern[str]], ...] = ()  # (allow, pattern text, compiled)
    note: str | None = None  # why everything is allowed or disallowed without rules (status, failure)
    allow_all: bool | None = None  # set when the file could not be used at all

    @classmethod
    def parse(cls, text: str, agent: str) -> Rules:
        """The rules for `agent` (its own groups if any, else the '*' groups) from a robots.txt body."""
        groups: dict[str, list[tuple[bool, str]]] = {}
        current: list[str] = []
        in_rules = False
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key, value = key.strip().lower(), value.strip()
            if key == "user-agent":
                if in_rules:
                    current, in_rules = [], False
                current.append(value.lower())
            elif key in ("allow", "disallow"):
                in_rules = True
                if not value or not current:  # an empty disallow is no rule at all
                    continue
                for ua in current:
                    groups.setdefault(ua, []).append((key == "allow", value))
        chosen = groups.get(agent) or next((g for ua, g in groups.items() if ua != "*" and agent.startswith(ua)),
                                           None) or groups.get("*", [])
        return cls(tuple((allow, path, _pattern(path)) for allow, path in chosen))

    def allowed(self, url: str) -> bool:
        if self.allow_all is not None:
            return self.allow_all
        parts = urlsplit(url)
        if parts.path == "/robots.txt":
            return True
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        best: tuple[int, bool] | None = None
        for allow, path, pattern in self.rules:
            if pattern.match(target):
                # The longest pattern decides; on a tie the allow rule wins (the least restrictive).
                rank = (len(path), allow)
                if best is None or rank > best:
                    best = rank
        return True if best is None else best[1]


def rules_from(result: FetchResult, agent: str) -> Rules:
    """The rules a robots.txt fetch result implies, RFC 9309 section 2.3.1."""
    if result.ok and result.body is not None:
        return Rules.parse(result.body.decode("utf-8", "replace"), agent)
    if result.status is not None and 400 <= result.status < 500:
        return Rules(allow_all=True, note=f"robots.txt unavailable (HTTP {result.status}): all allowed")
    why = f"HTTP {result.status}" if result.error and result.error.startswith("http_") else result.error
    return Rules(allow_all=False, note=f"robots.txt unreachable ({why}): all disallowed")


class RobotsCache:
    """robots.txt rules per origin, each fetched at most once however many threads ask at the same time."""

    def __init__(self, get: Callable[[str], FetchResult], user_agent: str) -> None:
        self._get = get
        self.agent = agent_token(user_agent)
        self._lock = threading.Lock()
        self._rules: dict[str, Rules] = {}
        self._origin_locks: dict[str, threading.Lock] = {}

    def rules_for(self, url: str) -> Rules:
        parts = urlsplit(url)
        origin = urlunsplit((parts.scheme.lower(), parts.netloc.lower().rsplit("@", 1)[-1], "", "", ""))
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
