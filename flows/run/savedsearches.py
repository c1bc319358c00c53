"""Saved searches (`[[searches]]` in the config): after an ingest, each one's matches among the run's new articles
become a table artifact and one `newsflow.search.matched` event, which a Prefect automation turns into an email,
a Slack message or a webhook (automations/newsflow.yaml, docs/search.md).

Prefect only at this edge; the search is flows/warehouse/search.py, over the index the run has just refreshed
(flows/warehouse/search_index.py), so call `publish` after `search_index.refresh`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from prefect.artifacts import create_table_artifact
from prefect.events import emit_event

from flows.core.searchquery import parse
from flows.core.sections import SavedSearch
from flows.core.settings import Settings
from flows.warehouse import database, search

MATCHED = "newsflow.search.matched"
_MAX_IDS = 1000  # article ids per event (an event is a small message); the artifact lists every match


def slug(name: str) -> str:
    """The search's name as an artifact key and resource id part: lower case, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "search"


def run_articles(settings: Settings, run_id: str) -> list[int]:
    """The articles a run stored (read-only, a moment); empty when the warehouse is busy."""
    try:
        with database.connect(settings.warehouse, read_only=True, wait=settings.warehouse.waits.report) as conn:
            return [r[0] for r in conn.execute("select article_id from articles where run_id = ?", [run_id]
                                               ).fetchall()]
    except database.WarehouseError:
        return []


def matches(settings: Settings, saved: SavedSearch, article_ids: list[int],
            searcher: search.Searcher | None = None) -> list[search.Hit]:
    """The matches of `saved` among `article_ids` (on `searcher`'s connection when given)."""
    filters = search.Filters(lang=saved.lang, feeds=saved.feeds, tags=saved.tags, limit=1000,
                             ids=tuple(article_ids))
    if searcher is not None:
        return searcher.search(parse(saved.query), filters)
    return search.search(settings.warehouse, parse(saved.query), filters)


def publish(settings: Settings, article_ids: list[int], log: logging.Logger | logging.LoggerAdapter[Any],
            run_id: str | None = None) -> dict[str, list[search.Hit]]:
    """For each saved search with matches among `article_ids`: a table artifact `search-<name>` and one
    `newsflow.search.matched` event with the search's name and the matched article ids. Returns the matches."""
    found: dict[str, list[search.Hit]] = {}
    if not settings.searches or not article_ids:
        return found
    with search.Searcher(settings.warehouse) as searcher:  # one connection for every saved search
        for saved in settings.searches:
            try:
                hits = matches(settings, saved, article_ids, searcher)
            except search.SearchIndexMissing as exc:
                log.warning("saved searches skipped: %s", database.first_line(exc))
                return found
            if hits:
                found[saved.name] = hits
                _announce(saved, hits, log, run_id)
    return found


def _announce(saved: SavedSearch, hits: list[search.Hit], log: logging.Logger | logging.LoggerAdapter[Any],
              run_id: str | None) -> None:
    """The table artifact and the event of one saved search's new matches."""
    from flows.run.searchflow import result_rows

    create_table_artifact(key=f"search-{slug(saved.name)}", table=result_rows(hits),
                          description=f"newsflow saved search {saved.name!r} ({saved.query}): "
                                      f"{len(hits)} new matches" + (f" in run {run_id}" if run_id else ""))
    log.info("saved search %r: %d new matches", saved.name, len(hits))
    emit_event(
        MATCHED,
        resource={"prefect.resource.id": f"newsflow.search.{slug(saved.name)}",
                  "prefect.resource.name": saved.name},
        payload={"search": saved.name, "query": saved.query, "run_id": run_id, "matches": len(hits),
                 "article_ids": [h.article_id for h in hits][:_MAX_IDS],
                 "articles": [{"title": h.title, "url": h.url, "feed": h.feed} for h in hits[:20]]},
    )
