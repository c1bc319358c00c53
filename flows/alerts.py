"""Feed alerts: feeds failing `health.alert_after_failures` runs in a row, as an ERROR log and a Prefect event.

The condition is answered by the warehouse (feeds.consecutive_failures), so it survives restarts and is the same
whether the run came from a schedule, the UI or the CLI. A Prefect automation on the event sends the alert
(docs/prefect.md, automations/newsflow.yaml).
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.events import emit_event

from flows import warehouse
from flows.settings import Settings

FEED_FAILING = "newsflow.feed.failing"


def failing_feeds(settings: Settings) -> list[dict[str, Any]]:
    """Feeds at or over the alert threshold; empty when the warehouse is locked (the next run asks again)."""
    try:
        with warehouse.connect(settings.warehouse, read_only=True, wait=2.0) as conn:
            cur = conn.execute(warehouse.query("failing_feeds"),
                               {"alert_after": settings.health.alert_after_failures})
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    except warehouse.WarehouseLocked:
        return []


def publish(settings: Settings, log: logging.Logger | logging.LoggerAdapter[Any]) -> list[dict[str, Any]]:
    """Log each failing feed at ERROR and emit one `newsflow.feed.failing` event per feed."""
    failing = failing_feeds(settings)
    for f in failing:
        log.error("feed %r has failed %d runs in a row (alert after %d): %s", f["feed"], f["consecutive_failures"],
                  settings.health.alert_after_failures, f["last_error"])
        emit_event(
            FEED_FAILING,
            resource={"prefect.resource.id": f"newsflow.feed.{f['feed']}", "prefect.resource.name": f["feed"]},
            payload={"feed": f["feed"], "url": f["url"], "consecutive_failures": f["consecutive_failures"],
                     "last_error": f["last_error"], "disabled": f["disabled"],
                     "alert_after_failures": settings.health.alert_after_failures},
        )
    return failing
