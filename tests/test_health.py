"""Per-feed state after each fetch: validators, backoff, Retry-After, ttl, 410, permanent redirects.

Covers: flows.feeds.health
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flows.core.sections import HealthSettings
from flows.core.settings import FeedConfig
from flows.feeds.health import due, next_state
from flows.feeds.parse import ParsedFeed
from flows.web.fetch import FetchResult

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FEED = FeedConfig(name="f", url="https://user:pw@news.test/rss")
HS = HealthSettings(backoff_base_seconds=3600, backoff_max_seconds=86400, max_interval_seconds=7200)


def _result(status: int | None, error: str | None = None, headers: dict[str, str] | None = None,
            redirects: tuple[tuple[int, str], ...] = (), final: str = "https://news.test/rss") -> FetchResult:
    return FetchResult(url=FEED.url, final_url=final, status=status, body=None, headers=headers or {},
                       error=error, redirects=redirects)


def _fail(prev: dict | None, status: int | None, error: str, headers: dict[str, str] | None = None) -> dict:
    return next_state(prev, FEED, _result(status, error, headers), None, error, "why", None, NOW, HS)


def test_backoff_doubles_to_the_cap_and_resets() -> None:
    state = None
    waits = []
    for _ in range(7):
        state = _fail(state, 500, "http_500")
        waits.append((state["next_fetch_at"] - NOW).total_seconds() / 3600)
    assert waits == [1, 2, 4, 8, 16, 24, 24] and state["consecutive_failures"] == 7
    assert due(state, NOW, FEED) == (False, "backing off until 2026-03-03 12:00 UTC")
    assert due(state, NOW + timedelta(days=1, seconds=1), FEED)[0]
    ok = next_state(state, FEED, _result(200, headers={"etag": '"e"'}), None, None, None, "h", NOW, HS)
    assert ok["consecutive_failures"] == 0 and ok["last_error"] is None and ok["etag"] == '"e"'
    assert ok["last_success_at"] == NOW


def test_retry_after_on_429_and_503() -> None:
    s = _fail(None, 429, "http_429", {"retry-after": "120"})
    assert s["next_fetch_at"] == NOW + timedelta(seconds=120)
    s = _fail(None, 503, "http_503", {"retry-after": "Tue, 03 Mar 2026 12:00:00 GMT"})
    assert s["next_fetch_at"] == NOW + timedelta(days=1)
    s = _fail(None, 503, "http_503", {"retry-after": "Tue, 03 Mar 2099 12:00:00 GMT"})
    assert s["next_fetch_at"] == NOW + timedelta(seconds=HS.backoff_max_seconds)  # capped


def test_410_disables_with_reason_until_the_url_changes() -> None:
    s = _fail(None, 410, "http_410")
    assert s["disabled"] and "410 Gone" in s["disabled_reason"]
    ok, why = due(s, NOW + timedelta(days=30), FEED)
    assert not ok and why.startswith("disabled: 410 Gone")
    moved = FeedConfig(name="f", url="https://news.test/new-rss")
    assert due(s, NOW, moved) == (True, None)
    fresh = next_state(s, moved, _result(200), None, None, None, "h", NOW, HS)
    assert not fresh["disabled"] and fresh["url"] == "https://news.test/new-rss"


def test_ttl_and_max_age_within_bounds() -> None:
    parsed = ParsedFeed((), "T", None, None, ttl_seconds=600)
    s = next_state(None, FEED, _result(200, headers={"cache-control": "public, max-age=300"}), parsed, None, None,
                   "h", NOW, HS)
    assert s["next_fetch_at"] == NOW + timedelta(seconds=600)
    s = next_state(None, FEED, _result(200, headers={"cache-control": "max-age=999999"}), None, None, None,
                   "h", NOW, HS)
    assert s["next_fetch_at"] == NOW + timedelta(seconds=HS.max_interval_seconds)


def test_permanent_redirects_move_the_url_temporary_do_not() -> None:
    perm = _result(200, redirects=((301, "https://a.test/x"), (308, "https://b.test/rss")), final="https://b.test/rss")
    assert next_state(None, FEED, perm, None, None, None, "h", NOW, HS)["url"] == "https://b.test/rss"
    temp = _result(200, redirects=((301, "https://a.test/x"), (302, "https://b.test/rss")), final="https://b.test/rss")
    assert next_state(None, FEED, temp, None, None, None, "h", NOW, HS)["url"] == "https://***@news.test/rss"


def test_304_keeps_validators_and_credentials_stay_out() -> None:
    first = next_state(None, FEED, _result(200, headers={"etag": '"a"', "last-modified": "Mon"}), None, None, None,
                       "h1", NOW, HS)
    again = next_state(first, FEED, _result(304), None, None, None, None, NOW, HS)
    assert (again["etag"], again["last_modified"], again["body_hash"]) == ('"a"', "Mon", "h1")
    assert "pw" not in again["configured_url"] and "pw" not in again["url"]


def test_a_state_computed_from_an_older_copy_never_rolls_the_stored_one_back(tmp_path) -> None:
    """A run whose start read the snapshot (the live file was held) carries older counters; the loader keeps the
    stored row's: a later failure is the stored failures + 1, an earlier fetch changes nothing, a reload is a
    no-op (warehouse/queries/feeds_merge.sql)."""
    import duckdb

    from flows.core.settings import load_settings
    from flows.warehouse import staging, store

    settings = load_settings(warehouse=tmp_path / "wh.duckdb", env={})
    live = None
    for _ in range(3):
        live = _fail(live, 500, "http_500")
    stale = _fail(None, 500, "http_500")  # what a day-old snapshot said: one failure

    def load(n: int, state: dict) -> None:
        batch = staging.Batch(f"20260302T120000-aaaaaaaa-{n:04d}", f"run-{n}")
        batch.add("feeds", state)
        assert store.store(settings, batch) is not None

    def stored() -> tuple:
        with duckdb.connect(str(settings.warehouse.path), read_only=True) as conn:
            return conn.execute("select consecutive_failures, last_fetch_at, last_success_at from feeds").fetchone()

    load(1, live)
    assert stored()[0] == 3
    later = next_state(stale, FEED, _result(500, "http_500"), None, "http_500", "why", None,
                       NOW + timedelta(hours=1), HS)
    assert later["consecutive_failures"] == 2  # from the stale copy
    load(2, later)
    assert stored()[:2] == (4, NOW + timedelta(hours=1))
    load(3, later)  # the same fetch again: no double count
    assert stored()[0] == 4
    older = {**stale, "last_fetch_at": NOW - timedelta(hours=5), "consecutive_failures": 0,
             "last_success_at": NOW - timedelta(hours=5), "last_error": None}
    load(4, older)  # fetched before the stored row: ignored
    assert stored()[:2] == (4, NOW + timedelta(hours=1))
    ok = next_state(stale, FEED, _result(200), None, None, None, None, NOW + timedelta(hours=2), HS)
    load(5, ok)
    assert stored() == (0, NOW + timedelta(hours=2), NOW + timedelta(hours=2))
