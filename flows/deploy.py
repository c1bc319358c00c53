"""Deployments: `ingest` on the configured cron schedule, plus the maintenance flows, served by `newsflow serve`.

The same flows run under a work pool through prefect.yaml; this module is the no-infrastructure path.
"""

from __future__ import annotations

import signal
from typing import Any

from prefect import serve as prefect_serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType
from prefect.utilities.annotations import freeze

from flows.flow import ingest, reload_seeds
from flows.maintenance import reprocess
from flows.settings import Settings

DEPLOYMENT = "newsflow"  # every flow's deployment has this name: ingest/newsflow, reprocess/newsflow, ...
TAGS = ["newsflow"]

# ENQUEUE, not CANCEL_NEW: a run started from the UI carries parameters someone chose (a backfill, one feed), so
# it waits for the slot instead of being dropped. A scheduled run queued behind a long one finds little new and
# costs a few seconds (docs/prefect.md has the figures).
ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def _target(settings: Settings) -> dict[str, Any]:
    """The config and warehouse every run of these deployments uses, frozen so the form cannot retarget them."""
    return {"config": freeze(str(settings.config_path)), "warehouse_path": freeze(str(settings.warehouse.path))}


def _feed_choices(deployment: RunnerDeployment, settings: Settings) -> None:
    """Offer the configured feed names and tags as choices, so the API refuses an unknown one before a run."""
    props = deployment._parameter_openapi_schema.properties  # the schema Prefect derived from the signature
    choices = {"feeds": sorted(f.name for f in settings.feeds),
               "tags": sorted({t for f in settings.feeds for t in f.tags})}
    for name, values in choices.items():
        if name in props and values:
            for option in props[name].get("anyOf", [props[name]]):
                if option.get("type") == "array":
                    option["items"] = {"type": "string", "enum": values}
                    option["uniqueItems"] = True


def deployments(settings: Settings) -> list[RunnerDeployment]:
    """The ingest deployment (scheduled, one run at a time) and the maintenance deployments (on demand)."""
    common: dict[str, Any] = {"tags": TAGS, "entrypoint_type": EntrypointType.MODULE_PATH,
                              "parameters": _target(settings)}
    schedule = Cron(settings.schedule.cron, timezone=settings.schedule.timezone)
    main = ingest.to_deployment(DEPLOYMENT, schedules=[schedule], concurrency_limit=ONE_AT_A_TIME,
                                description=f"Ingest the configured feeds, {settings.schedule.cron} "
                                            f"({settings.schedule.timezone})", **common)
    _feed_choices(main, settings)
    # Maintenance writes the same warehouse: one at a time each, and the run lock keeps them off a running ingest.
    upkeep = [f.to_deployment(DEPLOYMENT, concurrency_limit=ONE_AT_A_TIME, **common)
              for f in (reload_seeds, reprocess)]
    return [main, *upkeep]


def serve(settings: Settings, *, limit: int | None = None) -> None:
    """Register the deployments and run their flow runs in subprocesses until SIGINT/SIGTERM."""
    # pause_on_shutdown: with nobody serving, the UI shows the schedule paused rather than piling up Late runs;
    # the next `newsflow serve` registers the deployments unpaused again.
    # Until the runner installs its own graceful SIGTERM handler, a SIGTERM stops registration like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        prefect_serve(*deployments(settings), limit=limit, pause_on_shutdown=True)
    except KeyboardInterrupt:
        pass


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
