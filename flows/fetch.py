"""HTTP fetching with the limits an unattended fetcher needs: timeouts, a total deadline, a streamed body cap,
bounded redirects checked hop by hop, conditional GET, and a clear error code for every failure.

Expected failures come back as a FetchResult with `error` set; nothing here raises for a bad server.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from flows.netguard import BlockedAddress, GuardedBackend, Resolver
from flows.settings import FetchSettings
from flows.urls import redact

REDIRECTS = (301, 302, 303, 307, 308)
PERMANENT = (301, 308)


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
        return self.status == 304

    @property
    def permanent_url(self) -> str | None:
        """Where the resource now lives, when every hop was a permanent redirect."""
        if self.redirects and all(code in PERMANENT for code, _ in self.redirects):
            return self.final_url
        return None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def make_client(settings: FetchSettings, *, resolver: Resolver | None = None) -> httpx.Client:
    """A client whose every connection goes through the address guard. Redirects are followed by `fetch`."""
    backend = GuardedBackend(allow_private=settings.allow_private_networks,
                             **({"resolver": resolver} if resolver else {}))
    transport = httpx.HTTPTransport(retries=0)
    # httpx has no public hook for the network backend; the pool is rebuilt with the guard in it.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(), max_connections=settings.concurrency * 2,
        max_keepalive_connections=settings.concurrency, network_backend=backend,
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
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _failure(url: str, final: str, start: float, redirects: list[tuple[int, str]], error: str,
             detail: str, status: int | None = None, headers: dict[str, str] | None = None) -> FetchResult:
    return FetchResult(url=url, final_url=final, status=status, body=None, headers=headers or {},
                       error=error, detail=detail, elapsed_ms=(time.monotonic() - start) * 1000,
                       redirects=tuple(redirects))


def fetch(client: httpx.Client, url: str, settings: FetchSettings, *, max_bytes: int,
          etag: str | None = None, last_modified: str | None = None,
          accept: str = "*/*") -> FetchResult:
    """GET `url`, following at most `settings.max_redirects` redirects, each hop checked like the first."""
    start = time.monotonic()
    deadline = start + settings.total_timeout
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
                if resp.status_code in REDIRECTS and "location" in resp.headers:
                    target = urljoin(current, resp.headers["location"])
                    hops.append((resp.status_code, target))
                    if len(hops) > settings.max_redirects:
                        return _failure(url, current, start, hops, "too_many_redirects",
                                        f"more than {settings.max_redirects} redirects")
                    if target in seen:
                        return _failure(url, current, start, hops, "redirect_loop",
                                        f"redirect loop back to {redact(target)}")
                    seen.add(target)
                    current = target
                    continue
                resp_headers = {k.lower(): v for k, v in resp.headers.items()}
                if resp.status_code == 304:
                    return FetchResult(url=url, final_url=current, status=304, body=None,
                                       headers=resp_headers, elapsed_ms=(time.monotonic() - start) * 1000,
                                       redirects=tuple(hops))
                if resp.status_code >= 400:
                    return _failure(url, current, start, hops, f"http_{resp.status_code}",
                                    f"HTTP {resp.status_code} {resp.reason_phrase}".strip(),
                                    resp.status_code, resp_headers)
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    return _failure(url, current, start, hops, "too_large",
                                    f"declared body of {int(declared)} bytes exceeds the {max_bytes}-byte cap",
                                    resp.status_code, resp_headers)
                chunks: list[bytes] = []
                size = 0
                # iter_bytes decompresses, so the cap counts what a gzip bomb would expand to; unchunked, so the
                # deadline is checked on every read of a server dripping bytes.
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        return _failure(url, current, start, hops, "too_large",
                                        f"body exceeds the {max_bytes}-byte cap (after decompression)",
                                        resp.status_code, resp_headers)
                    if time.monotonic() > deadline:
                        return _failure(url, current, start, hops, "timeout",
                                        f"response took longer than {settings.total_timeout:g} s in total",
                                        resp.status_code, resp_headers)
                    chunks.append(chunk)
                return FetchResult(url=url, final_url=current, status=resp.status_code, body=b"".join(chunks),
                                   headers=resp_headers, elapsed_ms=(time.monotonic() - start) * 1000,
                                   redirects=tuple(hops))
        except BlockedAddress as exc:
            return _failure(url, current, start, hops, "blocked_address", str(exc))
        except httpx.TimeoutException as exc:
            return _failure(url, current, start, hops, "timeout", f"{type(exc).__name__}: timed out")
        except httpx.DecodingError as exc:
            return _failure(url, current, start, hops, "bad_encoding", f"cannot decode body: {exc}")
        except httpx.TooManyRedirects as exc:  # pragma: no cover - redirects are followed here, not by httpx
            return _failure(url, current, start, hops, "too_many_redirects", str(exc))
        except (httpx.TransportError, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, BlockedAddress):
                return _failure(url, current, start, hops, "blocked_address", str(cause))
            return _failure(url, current, start, hops, "connection_error",
                            f"{type(exc).__name__}: {redact(str(exc))}")
