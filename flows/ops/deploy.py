"""Deployments: `ingest` and `maintain` on their configured cron schedules, plus the on-demand flows, served by
`newsflow serve`.

The same flows run under a work pool through prefect.yaml; this module is the no-infrastructure path.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import TerminationSignal
from prefect.runner import Runner
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType
from prefect.utilities.annotations import freeze

from flows.core.settings import Settings
from flows.ops.maintain import maintain
from flows.ops.maintenance import reprocess
from flows.run import workers
from flows.run.ingest import ingest
from flows.run.loader import reload_seeds
from flows.run.searchflow import search_articles

DEPLOYMENT = "newsflow"  # every flow's deployment has this name: ingest/newsflow, reprocess/newsflow, ...
TAGS = ["newsflow"]

# ENQUEUE, not CANCEL_NEW: a run started from the UI carries parameters someone chose (a backfill, one feed), so
# it waits for the slot instead of being dropped. A scheduled run queued behind a long one finds little new and
# costs a few seconds (docs/prefect.md has the figures).
ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
# A stop (systemd, Ctrl-C) ends the process within this many seconds, even when the Prefect API is down and the
# runner's goodbye calls to it (pausing the schedules) would otherwise retry for minutes.
SHUTDOWN_TIMEOUT = 7.0


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
    """The ingest deployment (scheduled, one run at a time), the maintenance deployments (reload_seeds and reprocess
    on demand, maintain on its own schedule) and search."""
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
    # The nightly maintenance: one at a time, and the run lock keeps it and the ingests apart.
    m = settings.maintenance
    upkeep.append(maintain.to_deployment(
        DEPLOYMENT, schedules=[Cron(m.cron, timezone=m.timezone)], concurrency_limit=ONE_AT_A_TIME,
        description=f"Maintain the warehouse, {m.cron} ({m.timezone}): roll-up, retention, full checks, "
                    "DuckLake upkeep, compaction, lookup caches", **common))
    # Search reads only the index beside the warehouse: any number of runs, beside an ingest.
    find = search_articles.to_deployment(DEPLOYMENT, description="Full-text search of the stored articles; the "
                                                                 "results are the run's table artifact", **common)
    _feed_choices(find, settings)
    return [main, *upkeep, find]


class BoundedRunner(Runner):
    """Prefect's runner, with a shutdown that cannot outlive `shutdown_timeout` (see `bound_shutdown`), and a
    stop asked for while it is still starting kept for when it has started, rather than raised mid-start."""

    def __init__(self, *args: Any, shutdown_timeout: float = SHUTDOWN_TIMEOUT, banner: str = "",
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shutdown_timeout = shutdown_timeout
        self.banner = banner
        self.stop_requested = False

    def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
        bound_shutdown(self.shutdown_timeout)
        if not self.started or self._loop is None:
            self.stop_requested = True  # acted on by __aenter__, once there is a runner to stop
            return
        super().handle_sigterm(*args, **kwargs)

    async def __aenter__(self) -> BoundedRunner:
        await super().__aenter__()
        if self.stop_requested:
            self.stopping = True
            await self.astop()
        elif self.banner:
            print(self.banner, flush=True)  # only now: the signal handler is in place and polling begins
        return self


def serve(settings: Settings, *, limit: int | None = None, shutdown_timeout: float = SHUTDOWN_TIMEOUT,
          warm_pool: bool = True) -> None:
    """Register the deployments and run their flow runs in subprocesses until SIGINT/SIGTERM.

    What `prefect.serve` does, with our runner: on a signal the process is gone within `shutdown_timeout`
    seconds whatever the Prefect API's state. With `warm_pool`, one process pool (spaCy loaded) serves every
    flow run, so a run does not spawn workers and load models again (flows/run/workers.py).
    """
    pools: list[workers.WarmPool] = []

    def start_pool() -> None:
        try:
            pools.append(workers.WarmPool(settings))
        except Exception as exc:  # runs then make their own pools, as without serve
            print(f"newsflow serve: no warm pool ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
            return
        os.environ.update(pools[0].env())  # flow runs are spawned subprocesses: they inherit it

    # Started beside the runner, not before it: loading spaCy takes seconds, and a run that starts meanwhile
    # simply makes its own pool.
    if warm_pool and settings.worker_count() > 1:
        threading.Thread(target=start_pool, name="newsflow-warm-pool", daemon=True).start()
    try:
        _serve(settings, limit=limit, shutdown_timeout=shutdown_timeout)
    finally:
        for pool in pools:
            pool.close()


def _serve(settings: Settings, *, limit: int | None, shutdown_timeout: float) -> None:
    deps = deployments(settings)
    banner = ("Your deployments are being served and polling for scheduled runs!\n"
              + "".join(f"  {d.flow_name}/{d.name}\n" for d in deps)
              + "Run one from the Prefect UI (Deployments) or `prefect deployment run ingest/newsflow`.")
    # pause_on_shutdown: with nobody serving, the UI shows the schedule paused rather than piling up Late runs;
    # the next `newsflow serve` registers the deployments unpaused again.
    runner = BoundedRunner(pause_on_shutdown=True, limit=limit, shutdown_timeout=shutdown_timeout, banner=banner)

    def interrupt(signum: int, frame: Any) -> None:
        bound_shutdown(shutdown_timeout)
        raise KeyboardInterrupt

    # While the deployments are registered (blocking API calls), a signal interrupts them like Ctrl-C does.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    try:
        for deployment in deps:
            runner.add_deployment(deployment)
        # From here both signals take the runner's graceful path (stop polling, cancel runs, pause schedules).
        signal.signal(signal.SIGTERM, runner.handle_sigterm)
        signal.signal(signal.SIGINT, runner.handle_sigterm)
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal):
        pass
    except Exception as exc:
        if not _shutting_down.is_set():
            raise
        # Stopping anyway: a goodbye call the API could not take (it is down) is no reason to exit red.
        print(f"newsflow serve: stopped without telling the Prefect API ({type(exc).__name__}: {exc}); the "
              "schedule may show as not paused until the next `newsflow serve`", file=sys.stderr, flush=True)


_shutting_down = threading.Event()


def bound_shutdown(timeout: float) -> None:
    """Make sure the process exits within `timeout` seconds from now, once a shutdown has begun.

    A graceful shutdown talks to the Prefect API (pausing the schedules, marking cancelled runs); with the API
    down the client retries for minutes. A daemon thread ends the process when the time is up, so a stop from
    systemd or Ctrl-C is never held up by the API. Calling it again does not restart the clock.
    """
    if _shutting_down.is_set():
        return
    _shutting_down.set()
    threading.Thread(target=_exit_after, args=(timeout,), name="newsflow-shutdown-watchdog", daemon=True).start()


def _exit_after(timeout: float) -> None:
    threading.Event().wait(timeout)  # the process normally exits before this returns, taking the thread along
    print(f"newsflow serve: shutdown did not finish within {timeout:g} s (is the Prefect API reachable?); "
          "exiting now. Flow runs still going are left to the service manager, and the schedule may stay "
          "unpaused until the next `newsflow serve`.", file=sys.stderr, flush=True)
    os._exit(0)
