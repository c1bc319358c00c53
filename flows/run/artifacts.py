"""The run report: a summary table and a markdown page of failing feeds, top entities and warehouse checks, as
Prefect artifacts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.core.settings import Settings
from flows.core.stats import RunStats
from flows.run import alerts
from flows.warehouse import database
from flows.warehouse.checks import CheckRun


def summary_rows(stats: RunStats, checks: CheckRun | None = None) -> list[dict[str, Any]]:
    c = stats.counts()
    rows = [{"metric": k.replace("_", " "), "value": v} for k, v in c.items()]
    if checks is not None:
        rows.append({"metric": "checks failed", "value": len(checks.failed)})
    return rows


def checks_markdown(checks: CheckRun | None) -> list[str]:
    """The report's section on the warehouse checks run at the end of the run."""
    lines = ["## Warehouse checks", ""]
    if checks is None:
        return [*lines, "Not run (dry run, or the warehouse was locked at the end of the run)."]
    lines += [f"{len(checks.results)} checks, {len(checks.failed)} failing.", "",
              "| check | offending rows | ms | sample |", "|---|---|---|---|"]
    for r in checks.results:
        n = "error" if r.error else r.offending_rows
        if r.failed:
            n = f"**{n}**"
        sample = (r.error or (json.dumps(r.sample[0], default=str) if r.sample else "")).replace("|", "\\|")
        lines.append(f"| {r.name} | {n} | {r.duration_ms:.1f} | {sample[:200]} |")
    return lines


def stories_markdown(stories: list[tuple[Any, ...]]) -> list[str]:
    """The report's section on the stories this run started or added to (docs/stories.md)."""
    lines = ["## New and growing stories", ""]
    if not stories:
        return [*lines, "This run added no article to a story."]
    lines += ["| story | title | articles | outlets | added by this run | |", "|---|---|---|---|---|---|"]
    for story_id, title, articles, outlets, added, is_new, _languages in stories:
        title = (title or "").replace("|", "\\|")[:120]
        lines.append(f"| {story_id} | {title} | {articles} | {outlets} | {added} | {'new' if is_new else 'growing'} |")
    return lines


def markdown(run_id: str, stats: RunStats, failing: list[tuple[Any, ...]], top: list[tuple[Any, ...]],
             alert_after: int, checks: CheckRun | None = None, html_path: Path | None = None,
             stories: list[tuple[Any, ...]] | None = None) -> str:
    lines = [f"# newsflow run `{run_id}`", "",
             f"{stats.feeds_ok} feeds ok, {stats.feeds_not_modified} not modified, {stats.feeds_failed} failed, "
             f"{stats.feeds_skipped} skipped; {stats.articles_new} new articles, "
             f"{stats.duplicates_exact} exact and {stats.duplicates_near} near duplicates.", ""]
    if html_path is not None:
        lines += [f"The warehouse report page (charts, syndication, feed health) is at `{html_path}`.", ""]
    lines += ["## Failing feeds", ""]
    if failing:
        lines += ["| feed | failures in a row | last error | last success | state |", "|---|---|---|---|---|"]
        for feed, _url, n, err, ok_at, disabled, nxt in failing:
            state = "disabled" if disabled else (f"retry after {nxt:%Y-%m-%d %H:%M}" if nxt else "")
            if n >= alert_after:
                state = f"**ALERT** {state}".strip()
            err = (err or "").replace("|", "\\|")[:200]
            lines.append(f"| {feed} | {n} | {err} | {ok_at or 'never'} | {state} |")
    else:
        lines.append("None.")
    lines += ["", "## Top entities of this run", ""]
    if top:
        lines += ["| entity | label | mentions | articles |", "|---|---|---|---|"]
        lines += [f"| {name} | {label} | {m} | {a} |" for name, label, m, a in top]
    else:
        lines.append("No new articles were tagged.")
    lines += ["", *stories_markdown(stories or [])]
    lines += ["", *checks_markdown(checks)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class EndReads:
    """What the end of a run shows, read over the connection that ran the warehouse checks: each connection
    costs 25-35 ms to open and close, a tenth of a run with nothing new for these two reads alone."""
    failing: list[tuple[Any, ...]]  # the report's failing feeds (run_report)
    top: list[tuple[Any, ...]]  # the run's top entities
    alerting: list[dict[str, Any]]  # feeds over the alert threshold (alerts.failing_on)
    stories: list[tuple[Any, ...]] | None = None  # the stories the run started or grew


Rows = list[tuple[Any, ...]]


def _report_rows(conn: duckdb.DuckDBPyConnection, run_id: str) -> tuple[Rows, Rows, Rows]:
    """The report's failing feeds, the run's top entities and the stories it started or grew."""
    return (conn.execute(database.query("run_report")).fetchall(),
            conn.execute(database.query("run_top_entities"), {"run_id": run_id, "limit": 15}).fetchall(),
            conn.execute(database.query("run_stories"), {"run_id": run_id, "limit": 15}).fetchall())


def read_end(conn: duckdb.DuckDBPyConnection, settings: Settings, run_id: str) -> EndReads:
    failing, top, stories = _report_rows(conn, run_id)
    return EndReads(failing, top, alerts.failing_on(conn, settings), stories)


def publish(settings: Settings, run_id: str, stats: RunStats, dry_run: bool, checks: CheckRun | None = None, *,
            html_path: Path | None = None, reads: EndReads | None = None) -> None:
    """Create the run's artifacts in Prefect (best effort: a locked warehouse gives a shorter report). `reads`
    is what read_end read at the end of the run; None reads the report's part now."""
    failing: Rows = []
    top: Rows = []
    stories: Rows = []
    if reads is not None:
        failing, top, stories = reads.failing, reads.top, reads.stories or []
    elif not dry_run:
        try:
            with database.connect(settings.warehouse, wait=settings.warehouse.waits.report) as conn:
                failing, top, stories = _report_rows(conn, run_id)
        except database.WarehouseLocked:
            pass
    create_table_artifact(key="ingest-summary", table=summary_rows(stats, checks),
                          description=f"newsflow ingest run {run_id}")
    create_markdown_artifact(key="ingest-report",
                             markdown=markdown(run_id, stats, failing, top, settings.health.alert_after_failures,
                                               checks, html_path, stories),
                             description="failing feeds, top entities, new and growing stories, warehouse checks")
