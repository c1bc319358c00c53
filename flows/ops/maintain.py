"""The maintenance flow: the steps of flows/ops/upkeep.py (roll-up, raw-HTML retention, full checks, DuckLake
upkeep, compaction, lookup caches), each a task, under the warehouse's run lock, with a `runs` row (flow
`maintain`) and a table artifact of what each step did. Served nightly by `newsflow serve` ([maintenance] cron)
and run by `newsflow maintain`; docs/operations.md "Maintenance"."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.core.errors import NewsflowError, describe
from flows.core.settings import Settings, load_settings
from flows.core.stats import RunStats
from flows.ops import upkeep
from flows.run.finish import recorded_failure
from flows.run.tasks import RunContext
from flows.warehouse import store
from flows.warehouse.runlock import run_lock


class MaintainStep(StrEnum):
    rollup = "rollup"
    raw = "raw"
    checks = "checks"
    lake = "lake"
    compact = "compact"
    cache = "cache"
    snapshot = "snapshot"


run_step = task(upkeep.run_step, name="maintain-step", task_run_name="maintain-{name}", cache_policy=NO_CACHE,
                persist_result=False)


class LockBusy(RuntimeError):  # noqa: N818 - the name says what happened
    """Another run held the warehouse's run lock for the whole wait."""


@flow(name="maintain", log_prints=True)
def maintain(
    steps: list[MaintainStep] | None = None,
    dry_run: bool = False,
    config: str | None = None,
    warehouse_path: str | None = None,
) -> dict[str, Any]:
    """Maintain the warehouse: roll up old bookkeeping rows, drop raw HTML past its retention, run the full
    checks, expire and clean a DuckLake, compact the DuckDB file, rebuild missing lookup caches.

    Args:
        steps: Which steps (empty: all, in their order): rollup, raw, checks, lake, compact, cache.
        dry_run: Measure and say what each step would do; write nothing (no `runs` row either).
        config: Config file; empty uses NEWSFLOW_CONFIG or the default.
        warehouse_path: DuckDB file; empty uses the config.
    """
    log = get_run_logger()
    settings = load_settings(config, warehouse=warehouse_path)
    chosen = [s for s in upkeep.STEPS if not steps or s in {str(x) for x in steps}]
    run_id = str(flow_run.get_id() or uuid.uuid4())
    ctx = RunContext(settings, run_id, datetime.now(UTC), RunStats(), {"steps": chosen, "dry_run": dry_run},
                     "maintain")
    with _lock(settings) as wait:
        log.info("run lock taken after %.1f s", wait)
        with recorded_failure(ctx, dry_run=dry_run):
            if not dry_run:
                upkeep.migrate(settings)
                _record(ctx, "running")
            rows, failed = [], []
            for name in chosen:
                try:
                    result = run_step(name, settings, run_id, dry_run)
                except Exception as exc:  # one step's fault (a damaged file, say) never keeps the others from running
                    result = upkeep.StepResult(name, f"failed: {describe(exc)}")
                    failed.append(name)
                    log.error("%s failed: %s", name, describe(exc))
                else:
                    log.info("%s: %s (%.1f s)", name, result.did, result.seconds)
                rows.append(result.row())
            summary = "; ".join(f"{r['step']}: {r['did']}" for r in rows)
            create_table_artifact(key="maintain-summary", table=rows,
                                  description=f"newsflow maintain run {run_id}" + (" (dry run)" if dry_run else ""))
            if failed:  # after every step ran: the run is recorded as failed, with what each step did
                # The failure first: the runs row keeps a few hundred characters of it (the artifact has them all).
                errors = "; ".join(r["did"].removeprefix("failed: ") for r in rows if r["step"] in failed)
                others = ", ".join(r["step"] for r in rows if r["step"] not in failed) or "none"
                raise MaintenanceFailed(f"maintenance step {', '.join(failed)} failed ({errors}); the others ran: "
                                        f"{others}", rows)
            if not dry_run:
                _record(ctx, "completed", summary[:2000])
    return {"run_id": run_id, "dry_run": dry_run, "steps": rows}


class MaintenanceFailed(NewsflowError):  # noqa: N818 - like LockBusy
    """A maintenance step failed; the others ran. `rows`: what each step did (a failed one: its error)."""

    def __init__(self, message: str, rows: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.rows = rows


@contextmanager
def _lock(settings: Settings) -> Iterator[float]:
    """The warehouse's run lock, tried without blocking every few seconds for up to [maintenance]
    lock_wait_seconds (an ingest lasts a minute or so); yields the seconds waited, raises LockBusy when it stays
    held. An ingest starting meanwhile finds it held and skips its turn, as beside any other run."""
    start = time.monotonic()
    wait = settings.maintenance.lock_wait_seconds
    delay = 0.5
    while True:
        with run_lock(settings.warehouse.path) as mine:
            if mine:
                yield time.monotonic() - start
                return
        if time.monotonic() - start + delay > wait:
            raise LockBusy(f"an ingest or maintenance run holds {settings.warehouse.path} (waited {wait:g} s); "
                           "try again later")
        time.sleep(delay)  # polling a lock another process holds: there is nothing to wait on but time
        delay = min(delay * 2, 10.0)


def _record(ctx: RunContext, status: str, message: str | None = None) -> None:
    """The run's `runs` row, through a staged batch as every flow writes it (loaded at once: we hold the lock)."""
    batch = ctx.batch()
    batch.add("runs", ctx.run_row(status, message))
    store.record_run(ctx.settings, batch)
