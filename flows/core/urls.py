"""URL normalisation: one spelling per article, so the same link from two feeds is one key."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from typing import Protocol, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

from courlan import normalize_url


def normalise_url(url: str, base: str | None = None) -> str | None:
    """Absolute, lower-case host, tracking parameters and fragment removed; None when it is not http(s)."""
    url = (url or "").strip()
    if not url:
        return None
    try:
        if base:
            url = urljoin(base, url)
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket (`http://[::1`), and the like
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    try:
        # courlan drops utm_*, fbclid and similar trackers and sorts the remaining parameters.
        cleaned = normalize_url(url)
    except ValueError:
        return None
    parts = urlsplit(cleaned)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


_USERINFO = re.compile(r"(?<=//)[^/\s@]*@")


def scrub(text: str) -> str:
    """Any text (an error message, a log line) with the user:password of every URL in it replaced by ***."""
    return _USERINFO.sub("***@", text)


def redact(url: str) -> str:
    """The URL without user:password, for logs and the warehouse."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port, which the fallback below handles
    except ValueError:
        return scrub(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


class _HasUrl(Protocol):
    @property
    def url(self) -> str | None: ...


_U = TypeVar("_U", bound=_HasUrl)


def interleave_hosts(items: Iterable[_U]) -> list[_U]:
    """Round robin over hosts (entries or feeds, in their order within a host), so one host's politeness delay
    does not hold every thread."""
    by_host: dict[str, list[_U]] = {}
    for item in items:
        by_host.setdefault(host_of(item.url or ""), []).append(item)
    out: list[_U] = []
    queues = [deque(q) for q in by_host.values()]  # popleft: a host's thousands of entries stay linear
    while queues:
        out += [q.popleft() for q in queues]
        queues = [q for q in queues if q]
    return out
