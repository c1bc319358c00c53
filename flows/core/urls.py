"""Links as published, and their keys: a link is fetched and stored as the feed gave it; only keys are normalised.

`published_link` makes a link absolute and nothing more (docs/fetching.md lists each change it may make);
`normalise_url` builds the key that the same article gets whichever feed and spelling it came from (entry dedup,
article ids, the syndication view). A key is never fetched: normalising rewrites characters legal in a path
(`*` to `%2A`, `//` to `/`), which breaks links that carry a second URL in their path.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from typing import Protocol, TypeVar
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from courlan import normalize_url

# What a browser drops from a link before reading it (the WHATWG URL standard): C0 controls and spaces around it,
# ASCII tabs and newlines anywhere (a feed that wraps a long link in its XML).
_AROUND = "".join(map(chr, range(0x21)))
_TAB_NEWLINE = re.compile(r"[\t\n\r]")


def published_link(link: str | None, base: str | None = None) -> str | None:
    """The link as published, made absolute: controls and spaces around it and tabs and newlines in it removed, a
    relative link resolved against `base`; None when the result is not http(s) with a host. An absolute link is
    returned character for character (no case, escaping, path or query change)."""
    link = _TAB_NEWLINE.sub("", (link or "").strip(_AROUND))
    if not link:
        return None
    try:
        if base and urlsplit(link).scheme.lower() not in ("http", "https"):
            link = urljoin(base, link)
        parts = urlsplit(link)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:  # an unclosed IPv6 bracket (`http://[::1`), a port out of range, and the like
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return link


def normalise_url(url: str, base: str | None = None) -> str | None:
    """The key of a link: absolute, lower-case host, tracking parameters and fragment removed, path re-escaped
    (courlan); None when it is not http(s). Idempotent. For keys only: fetch and store `published_link`."""
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


# The userinfo of a URL: `user@`, or `user:password@` where the password (unencoded, as users type it) may hold
# spaces, ':' or '@': it runs to the last '@' before the path, so no part of it is left over.
_USERINFO = re.compile(r"(?<=//)(?:[^/\s:@]*:[^/\n]*|[^/\s@]*)@")
# `password=` (libpq's key=value form, a URI's query, PGPASSWORD=) and its value: single-quoted with libpq's
# backslash escapes (spaces and all), double-quoted, or up to the next space.
_PASSWORD = re.compile(r"""(?i)\b((?:pg)?password\s*=\s*)(?:'(?:[^'\\]|\\[\s\S])*(?:'|$)|"[^"]*(?:"|$)|[^\s'"]\S*)""")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Any text (an error message, a log line, a catalog's name) with every password in it replaced by ***: the
    userinfo of URLs (`https://***@host`) and `password=` values, quoted or not. The one masking function of every
    message that may hold a URL or a connection string. `secrets` (from `secrets_in` of the connection string
    the text is about) are masked wherever they appear too: libpq quotes a bad password bare in its errors."""
    for secret in sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "***")
    return _PASSWORD.sub(r"\1***", _USERINFO.sub("***@", text))


def secrets_in(text: str) -> list[str]:
    """The passwords written in a connection string or URL, as written and as decoded (percent-encoding, libpq
    quotes and escapes), for `scrub` to find them wherever a message quotes them."""
    found: list[str] = []
    for m in _USERINFO.finditer(text):
        user_pass = m[0][:-1]
        if ":" in user_pass:
            password = user_pass.split(":", 1)[1]
            # An unencoded '@' in it: libpq splits at the first one and quotes the rest as a host name.
            found += [password, *password.split("@")]
    for m in _PASSWORD.finditer(text):
        value = m[0][len(m[1]):]
        found.append(value)
        if value[:1] in ("'", '"'):
            inner = value[1:-1] if len(value) > 1 and value[-1] == value[0] else value[1:]
            found.append(re.sub(r"\\(.)", r"\1", inner) if value[0] == "'" else inner)
    return [v for s in found for v in {s, unquote(s)} if v]


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
    """The lower-case host of `url`; "" when it has none or cannot be parsed (`http://[::1`): a bad URL is its
    feed's or entry's failure, found where it is fetched, never an error of the whole list it is in."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


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
