"""The fan-out: n stage-only shard runs on a Prefect work pool side by side, then the one loader.

Every shard run is `ingest` with `shard="K/N", stage_only=True`, started with `run_deployment` on the
`ingest/shard` deployment (prefect.yaml), so any worker of the pool may take it; the batches go to the shared
`[warehouse] staging_dir`. When every shard run has ended, however it ended, the `load/newsflow` deployment
(concurrency 1: the one committer) loads every staged batch oldest first and runs the warehouse checks. A shard
whose run crashed loses nothing: what it staged is loaded, and its feeds are fetched again by the next fan-out;
the fan-out then ends `incomplete`, and `newsflow fanout` exits 1 naming the shard (`exit_status`).
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from uuid import UUID

from prefect import flow, get_client, get_run_logger
from prefect.client.schemas.objects import WorkPoolStatus
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL
from pydantic import Field

from flows.core.settings import MAX_SHARDS

SHARD_DEPLOYMENT = "ingest/shard"
LOADER_DEPLOYMENT = "load/newsflow"


def preflight(deployments: tuple[str, ...] = (SHARD_DEPLOYMENT, LOADER_DEPLOYMENT)) -> str | None:
    """Why a fan-out cannot start here (no Prefect API, deployments missing, no worker on their pool), as one
    line; None when it can."""
    if not PREFECT_API_URL.value():
        return ("fanout needs a Prefect API and a work pool: set PREFECT_API_URL, create the pool and deploy "
                "(`prefect work-pool create newsflow --type process`, `prefect deploy --all`; docs/scale.md)")
    with get_client(sync_client=True) as client:
        if client.api_healthcheck() is not None:
            return f"fanout needs a Prefect API: none answers at {PREFECT_API_URL.value()}"
        pools: set[str] = set()
        for name in deployments:
            try:
                pools.add(client.read_deployment_by_name(name).work_pool_name or "")
            except Exception:  # ObjectNotFound, or an API that refuses: either way the line below says what to do
                return (f"fanout needs the deployment {name} on a work pool: run `prefect deploy --all` "
                        "(prefect.yaml; docs/scale.md)")
        for pool in sorted(pools):
            if not pool:
                return "fanout needs its deployments on a work pool: run `prefect deploy --all` (prefect.yaml)"
            try:
                status = client.read_work_pool(pool).status
            except Exception:
                return f"fanout needs the work pool {pool!r}: `prefect work-pool create {pool} --type process`"
            if status != WorkPoolStatus.READY:
                return (f"fanout needs a worker on the work pool {pool!r}: `prefect worker start --pool {pool}` "
                        "(none is polling it)")
    return None


def wait_all(ids: list[UUID], *, timeout: float, poll: float) -> dict[UUID, Any]:
    """The final state of each flow run, polled until all have ended (or `timeout`: the runs still going are
    returned with their current state)."""
    deadline = time.monotonic() + timeout
    states: dict[UUID, Any] = {}
    with get_client(sync_client=True) as client:
        while True:
            states = {i: client.read_flow_run(i).state for i in ids}
            if all(s is not None and s.is_final() for s in states.values()) or time.monotonic() > deadline:
                return states
            time.sleep(poll)  # polling the API for run states; the runs themselves report to it


@flow(name="fanout", log_prints=True)
def fanout(
    shards: Annotated[int, Field(ge=1, le=MAX_SHARDS, description="Shard runs to start (feeds split by host)")] = 2,
    max_articles_per_feed: Annotated[
        int | None, Field(ge=0, le=1000, description="New articles taken per feed; empty uses the config")
    ] = None,
    config: Annotated[str | None, Field(description="Config file; empty uses the workers' default")] = None,
    warehouse_path: Annotated[str | None, Field(description="DuckDB file; empty uses the config")] = None,
    timeout_seconds: Annotated[float, Field(gt=0, description="How long the shard runs may take")] = 3600.0,
    poll_seconds: Annotated[float, Field(gt=0, le=60, description="How often run states are read")] = 2.0,
) -> dict[str, Any]:
    """Run `shards` stage-only shard runs on the work pool, then the loader once they have all ended.

    Args:
        shards: Shard runs to start; feeds are split by a stable hash of their host.
        max_articles_per_feed: New articles taken per feed (0-1000); empty uses the config.
        config: Config file as the workers see it; empty uses their NEWSFLOW_CONFIG or the default.
        warehouse_path: DuckDB file as the workers see it; empty uses the config.
        timeout_seconds: How long the shard runs may take before the loader runs anyway.
        poll_seconds: How often the shard and loader run states are read.
    """
    log = get_run_logger()
    target = {"config": config, "warehouse_path": warehouse_path}
    started = {}
    for k in range(1, shards + 1):
        params = {**target, "shard": f"{k}/{shards}", "stage_only": True,
                  "max_articles_per_feed": max_articles_per_feed}
        run = run_deployment(SHARD_DEPLOYMENT, parameters=params, timeout=0,
                             flow_run_name=f"shard-{k}-of-{shards}")
        started[k] = run.id
    log.info("%d shard runs started on the work pool", shards)
    states = wait_all(list(started.values()), timeout=timeout_seconds, poll=poll_seconds)
    outcome = {f"{k}/{shards}": states[i].type.value if states[i] else "UNKNOWN" for k, i in started.items()}
    incomplete = [s for s, t in outcome.items() if t != "COMPLETED"]
    if incomplete:  # what they staged is loaded below; their feeds are fetched again by the next fan-out
        log.error("shard runs that did not complete: %s", ", ".join(f"{s} ({outcome[s]})" for s in incomplete))
    loader = run_deployment(LOADER_DEPLOYMENT, parameters=target, timeout=timeout_seconds,
                            poll_interval=poll_seconds, flow_run_name=f"load-after-{shards}-shards")
    loaded = loader.state.type.value if loader.state else "UNKNOWN"
    log.info("loader run %s: %s", loader.id, loaded)
    return summarise(outcome, loaded, str(loader.id))


def summarise(shards: dict[str, str], loader: str, loader_run_id: str) -> dict[str, Any]:
    """The fan-out's result from the final state type of each shard run (`{"K/N": "COMPLETED" | "CRASHED" |
    ...}`) and of the loader's run: `completed` only when all of them completed, else `incomplete`."""
    order = sorted(shards, key=lambda s: int(s.split("/")[0]))
    incomplete = [s for s in order if shards[s] != "COMPLETED"]
    status = "completed" if not incomplete and loader == "COMPLETED" else "incomplete"
    return {"status": status, "shards": {s: shards[s] for s in order}, "incomplete": incomplete,
            "loader": loader, "loader_run_id": loader_run_id}


def exit_status(summary: dict[str, Any]) -> tuple[int, str | None]:
    """`newsflow fanout`'s exit status and error line: 0 when every shard run and the loader completed; else 1
    (not a user error: a run on the pool failed), with one line naming the shards that did not complete and their
    states, and the loader when it did not complete."""
    problems = [f"shard {s} did not complete ({summary['shards'][s]}); what it staged is loaded, the next fanout "
                "fetches its feeds again" for s in summary["incomplete"]]
    if summary["loader"] != "COMPLETED":
        problems.append(f"the loader run {summary['loader_run_id']} ended {summary['loader']}; what is staged "
                        "stays staged for the next load")
    return (1, "fanout incomplete: " + "; ".join(problems)) if problems else (0, None)
