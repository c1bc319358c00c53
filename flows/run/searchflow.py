"""The `search` flow: a full-text search from the Prefect UI, its results as a table artifact (docs/search.md).

Prefect only here; the search itself is flows/warehouse/search.py. Read-only: it opens only the index beside the
warehouse, so a run never waits for an ingest, nor holds one up.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from pydantic import Field

from flows.core.searchquery import parse
from flows.core.settings import load_settings
from flows.warehouse import search


def result_rows(hits: list[search.Hit]) -> list[dict[str, Any]]:
    """One artifact row per result, best first; the title links to the article (Markdown in the UI's table)."""
    return [{"rank": n, "title": f"[{(h.title or h.url).replace('[', '(').replace(']', ')')}]({h.url})",
             "outlet": h.feed or "seed", "date": h.date.date().isoformat() if h.date else "",
             "language": h.language or "", "copies": h.copies, "score": round(h.score, 2), "snippet": h.snippet}
            for n, h in enumerate(hits, 1)]


@flow(name="search", log_prints=True)
def search_articles(
    query: Annotated[str, Field(min_length=1)],
    lang: str | None = None,
    since: date | None = None,
    until: date | None = None,
    feeds: list[str] | None = None,
    tags: list[str] | None = None,
    limit: Annotated[int, Field(ge=1, le=1000)] = 20,
    config: str | None = None,
    warehouse_path: str | None = None,
) -> list[dict[str, Any]]:
    """Search the stored articles and publish the results as the table artifact `search-results`.

    Args:
        query: Words (AND-ed), "a phrase" in double quotes, -word to exclude, a OR b for either.
        lang: Only articles in this language (en, fr, de, ...).
        since: Published (else fetched) on or after this day.
        until: Published (else fetched) on or before this day.
        feeds: Only these feeds.
        tags: Only feeds with one of these tags.
        limit: Results, 1-1000.
        config: Config file; empty uses NEWSFLOW_CONFIG or the default.
        warehouse_path: DuckDB file; empty uses the config.
    """
    log = get_run_logger()
    settings = load_settings(config, warehouse=warehouse_path)
    filters = search.Filters(lang=lang.lower() if lang else None, since=since, until=until,
                             feeds=tuple(feeds or ()), tags=tuple(tags or ()), limit=limit)
    rows = result_rows(search.search(settings.warehouse, parse(query), filters))
    create_table_artifact(key="search-results", table=rows or [{"rank": "", "title": "no matches"}],
                          description=f"newsflow search: {query}")
    log.info("search %r: %d results", query, len(rows))
    return rows
