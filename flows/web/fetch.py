"""HTTP fetching with the limits an unattended fetcher needs: timeouts, a total deadline, a streamed body cap,
bounded redirects checked hop by hop, conditional GET, content-type checks, and a clear error code for every
failure.

Expected failures come back as a FetchResult with `error` set; nothing here raises for a bad server. The codes:
timeout, too_large, too_many_redirects, redirect_loop, bad_scheme, bad_url, blocked_address, connection_error,
bad_encoding, wrong_content_type and http_<status> (docs/fetching.md has the table).
"""

from __future__ import annotations

import email.utils
import functools
import ssl
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from flows.core.sections import FetchSettings
from flows.core.urls import redact, scrub
from flows.web.netguard import BlockedAddress, DeadlineExceeded, GuardedBackend, Resolver, deadline, parse_networks

REDIRECTS = (301, 302, 303, 307, 308)
PERMANENT = (301, 308)
_STEP = 64 * 1024  # most bytes one decompression call may produce, so a bomb never expands at once
_DRAIN = 16 * 1024  # a redirect's or an error's declared body up to this size is read so the connection is kept
_BINARY = ("image/", "audio/", "video/", "font/", "application/pdf", "application/zip", "application/gzip",
           "application/x-gzip", "application/msword", "application/vnd.", "application/x-shockwave-flash")
_PAGE_TYPES = ("", "text/html", "application/xhtml+xml", "text/plain", "application/xml", "text/xml")


@dataclass(frozen=True)
class FetchResult:
    url: str
    final_url: str
    status: int | None
    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # short code: timeout, too_large, blocked_address, http_404, ...
    detail: str | None = None  # one human sentence saying what happened
    elapsed_ms: float = 0.0
    redirects: tuple[tuple[int, str], ...] = ()
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    @property
    def not_modified(self) -> bool:
        return self.error is None and self.status == 304

    @property
    def permanent_url(self) -> str | None:
        """Where the resource now lives, when every hop was a permanent redirect."""
        if self.redirects and all(code in PERMANENT for code, _ in self.redirects):
            return self.final_url
        return None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_feed_type(content_type: str) -> bool:
    """Feeds arrive under every text type and some odd ones; only clearly binary types are refused."""
    return not content_type.startswith(_BINARY)


def is_page_type(content_type: str) -> bool:
    """Types trafilatura can extract an article from."""
    return content_type in _PAGE_TYPES


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle takes 20 ms, and every stage makes a client
    (SSLContext is safe to share between threads and clients)."""
    return httpx.create_ssl_context()


def make_client(settings: FetchSettings, *, resolver: Resolver | None = None) -> httpx.Client:
    """A client whose every connection goes through the address guard. Redirects are followed by `fetch`."""
    backend = GuardedBackend(allow_private=settings.allow_private_networks,
                             allowed=parse_networks(settings.allowed_networks),
                             **({"resolver": resolver} if resolver else {}))
    transport = httpx.HTTPTransport(verify=_ssl_context(), retries=0)
    # httpx has no public hook for the network backend; the pool is rebuilt with the guard in it. Idle
    # connections are kept for many hosts: pages go round robin over hosts, and a pool of `concurrency` would
    # close one host's connection to open the next (every request a new connection, 764 for 704 pages).
    # An idle connection is dropped after 5 s (httpx's own default, lost when the pool is built by hand).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=_ssl_context(), max_connections=max(settings.concurrency * 2, 100),
        max_keepalive_connections=max(settings.concurrency, 100), keepalive_expiry=5.0, network_backend=backend,
    )
    timeout = httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout)
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False,
                        headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"})


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class UnsupportedEncodingError(Exception):
    """A Content-Encoding newsflow did not ask for and cannot decode."""


class Inflater:
    """Decodes a gzip/deflate/identity body piece by piece, each piece at most 64 KiB, whatever the ratio."""

    def __init__(self, content_encoding: str | None) -> None:
        enc = (content_encoding or "identity").strip().lower()
        if enc in ("", "identity", "none"):
            self._wbits: int | None = None
        elif enc in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif enc == "deflate":
            self._wbits = zlib.MAX_WBITS
        else:
            raise UnsupportedEncodingError(f"unsupported Content-Encoding {enc!r}")
        self._raw_deflate_tried = False
        self._started = False
        self._d = zlib.decompressobj(self._wbits) if self._wbits else None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._d is None:
            yield data
            return
        while data:
            try:
                out = self._d.decompress(data, _STEP)
            except zlib.error:
                # "deflate" is meant to be zlib-wrapped; some servers send raw deflate instead.
                if self._wbits == zlib.MAX_WBITS and not self._started and not self._raw_deflate_tried:
                    self._raw_deflate_tried = True
                    self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise
            self._started = True
            if out:
                yield out
            if self._d.eof:  # a second gzip member, or trailing junk after the stream
                data = self._d.unused_data
                if data and self._wbits and self._wbits > zlib.MAX_WBITS:
                    self._d = zlib.decompressobj(self._wbits)
                    continue
                return
            data = self._d.unconsumed_tail

    def flush(self) -> bytes:
        return self._d.flush(_STEP) if self._d is not None and not self._d.eof else b""


def _failure(url: str, final: str, start: float, redirects: list[tuple[int, str]], error: str,
             detail: str, status: int | None = None, headers: dict[str, str] | None = None) -> FetchResult:
    return FetchResult(url=url, final_url=final, status=status, body=None, headers=headers or {},
                       error=error, detail=scrub(detail), elapsed_ms=(time.monotonic() - start) * 1000,
                       redirects=tuple(redirects))


def fetch(client: httpx.Client, url: str, settings: FetchSettings, *, max_bytes: int,
          etag: str | None = None, last_modified: str | None = None, accept: str = "*/*",
          accept_type: Callable[[str], bool] | None = None) -> FetchResult:
    """GET `url`, following at most `settings.max_redirects` redirects, each hop checked like the first.

    The whole exchange, redirects included, must finish within `settings.total_timeout`; the body is read raw
    and decompressed in bounded pieces, so `max_bytes` caps what a gzip bomb would expand to without holding it.
    `accept_type` refuses a response by its media type before its body is read.
    """
    start = time.monotonic()
    with deadline(settings.total_timeout) as until:
        try:
            return _fetch(client, url, settings, start, until, max_bytes, etag, last_modified, accept, accept_type)
        except (ValueError, UnicodeError, httpx.InvalidURL) as exc:  # a URL httpx or idna cannot even represent
            return _failure(url, url, start, [], "bad_url", f"unusable URL: {type(exc).__name__}: {exc}")


def _fetch(client: httpx.Client, url: str, settings: FetchSettings, start: float, until: float, max_bytes: int,
           etag: str | None, last_modified: str | None, accept: str,
           accept_type: Callable[[str], bool] | None) -> FetchResult:
    headers = {"Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    current = url
    hops: list[tuple[int, str]] = []
    seen = {url}
    while True:
        if urlsplit(current).scheme.lower() not in ("http", "https"):
            return _failure(url, current, start, hops, "bad_scheme",
                            f"refused to follow a non-HTTP URL {redact(current)}")
        try:
            with client.stream("GET", current, headers=headers) as resp:
                resp_headers = {k.lower(): v for k, v in resp.headers.items()}
                if resp.status_code in REDIRECTS and "location" in resp.headers:
                    target = urljoin(current, resp.headers["location"].strip())
                    hops.append((resp.status_code, target))
                    if target in seen:
                        return _failure(url, current, start, hops, "redirect_loop",
                                        f"redirect loop back to {redact(target)}", resp.status_code)
                    if len(hops) > settings.max_redirects:
                        return _failure(url, current, start, hops, "too_many_redirects",
                                        f"more than {settings.max_redirects} redirects", resp.status_code)
                    seen.add(target)
                    current = target
                    _release(resp)
                    continue
                if resp.status_code == 304:
                    _release(resp)
                    return FetchResult(url=url, final_url=current, status=304, body=None,
                                       headers=resp_headers, elapsed_ms=(time.monotonic() - start) * 1000,
                                       redirects=tuple(hops))
                if resp.status_code >= 300:
                    _release(resp)
                    return _failure(url, current, start, hops, f"http_{resp.status_code}",
                                    f"HTTP {resp.status_code} {resp.reason_phrase}".strip(),
                                    resp.status_code, resp_headers)
                media = resp_headers.get("content-type", "").split(";", 1)[0].strip().lower()
                if accept_type is not None and not accept_type(media):
                    return _failure(url, current, start, hops, "wrong_content_type",
                                    f"server sent {media}, not a type this fetch can use",
                                    resp.status_code, resp_headers)
                declared = resp.headers.get("content-length", "").strip()
                if declared.isdigit() and int(declared) > max_bytes:
                    return _failure(url, current, start, hops, "too_large",
                                    f"declared body of {int(declared)} bytes exceeds the {max_bytes}-byte cap",
                                    resp.status_code, resp_headers)
                try:
                    inflater = Inflater(resp.headers.get("content-encoding"))
                except UnsupportedEncodingError as exc:
                    return _failure(url, current, start, hops, "bad_encoding", str(exc),
                                    resp.status_code, resp_headers)
                body = bytearray()
                for raw in resp.iter_raw(_STEP):
                    for piece in inflater.feed(raw):
                        body += piece
                        if len(body) > max_bytes:
                            return _failure(url, current, start, hops, "too_large",
                                            f"body exceeds the {max_bytes}-byte cap (counted after decompression)",
                                            resp.status_code, resp_headers)
                    if time.monotonic() > until:
                        raise DeadlineExceeded("total time limit reached")
                body += inflater.flush()
                if len(body) > max_bytes:
                    return _failure(url, current, start, hops, "too_large",
                                    f"body exceeds the {max_bytes}-byte cap (counted after decompression)",
                                    resp.status_code, resp_headers)
                return FetchResult(url=url, final_url=current, status=resp.status_code, body=bytes(body),
                                   headers=resp_headers, elapsed_ms=(time.monotonic() - start) * 1000,
                                   redirects=tuple(hops))
        except zlib.error as exc:
            return _failure(url, current, start, hops, "bad_encoding", f"cannot decompress body: {exc}")
        except (BlockedAddress, DeadlineExceeded, httpx.HTTPError, httpcore.ConnectError) as exc:
            return _from_exception(url, current, start, hops, exc, settings, until)


def _release(resp: httpx.Response) -> None:
    """Read a response's empty or short body to its end, so its connection goes back to the pool.

    httpcore closes a connection whose response was left unread: every 304 of a quiet run, every redirect and
    every 404 would then open a new connection (a TLS handshake each, on a real outlet). A body that is not
    declared short is left unread and its connection closed, as before: reading it could take the read timeout.
    """
    declared = resp.headers.get("content-length", "").strip()
    if resp.status_code not in (204, 304) and not (declared.isdigit() and int(declared) <= _DRAIN):
        return
    try:
        for _ in resp.iter_raw(_DRAIN):
            pass
    except httpx.HTTPError:
        pass  # the connection is dropped, as it would have been


def _from_exception(url: str, current: str, start: float, hops: list[tuple[int, str]], exc: Exception,
                    settings: FetchSettings, until: float) -> FetchResult:
    """The FetchResult for a transport failure; the guard's refusal may arrive wrapped by httpx."""
    chain = [exc, exc.__cause__, exc.__context__]
    blocked = next((e for e in chain if isinstance(e, BlockedAddress)), None)
    if blocked is not None:
        return _failure(url, current, start, hops, "blocked_address", str(blocked))
    if any(isinstance(e, DeadlineExceeded) for e in chain) or time.monotonic() >= until:
        return _failure(url, current, start, hops, "timeout",
                        f"response took longer than the {settings.total_timeout:g} s total limit")
    if isinstance(exc, httpx.ConnectTimeout):
        return _failure(url, current, start, hops, "timeout",
                        f"no connection within {settings.connect_timeout:g} s")
    if isinstance(exc, httpx.TimeoutException):
        return _failure(url, current, start, hops, "timeout",
                        f"server sent nothing for {settings.read_timeout:g} s")
    if isinstance(exc, httpx.DecodingError):
        return _failure(url, current, start, hops, "bad_encoding", f"cannot decode body: {exc}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return _failure(url, current, start, hops, "bad_url", f"{type(exc).__name__}: {exc}")
    return _failure(url, current, start, hops, "connection_error", f"{type(exc).__name__}: {exc}")


@contextmanager
def client_for(settings: FetchSettings, client: httpx.Client | None) -> Iterator[httpx.Client]:
    """The given client, or a new guarded one closed on exit."""
    if client is not None:
        yield client
        return
    with make_client(settings) as c:
        yield c


def failed(url: str, code: str, detail: str) -> FetchResult:
    """A fetch that never got an answer, with its error code."""
    return FetchResult(url=url, final_url=url, status=None, body=None, error=code, detail=detail)
