"""The UI path against a real `prefect server start` on loopback: serve, run with a form's parameters, collide.

One server per session; each test starts its own `newsflow serve` over its own demo warehouse. Figures measured
here (server start, run overhead) are printed, never asserted: speed targets live in benchmarks/.

Covers: flows.ops.deploy
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from flows.ops.demo import DEMO_DATA, demo_config
from flows.ops.localserver import LocalServer

pytestmark = pytest.mark.prefect_server

BIN = Path(sys.executable).parent
FIGURES: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond: Callable[[], Any], what: str, deadline: float = 120.0, every: float = 0.25) -> Any:
    """Poll `cond` until it returns something truthy, or fail naming `what`."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(every)  # polling interval of a condition wait, not synchronisation by sleeping
    raise AssertionError(f"timed out after {deadline:.0f}s waiting for {what}")


@dataclass
class Server:
    api: str
    env: dict[str, str]
    client: httpx.Client


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`prefect server start` on a free loopback port, its own PREFECT_HOME, analytics off. One per test file, not
    per session: its services poll all the time (8-10 % of a core measured), and a session-wide server kept that
    up for the rest of the suite after its last test (about 100 s of CPU in a 15-minute run on 2 cores)."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
        "PREFECT_UI_ENABLED": "false", "PREFECT_API_URL": api, "NO_PROXY": "127.0.0.1,localhost",
        # An enqueued run asks for the slot again after this long (default 30 s).
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    })
    log = (home / "server.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = httpx.Client(base_url=api, trust_env=False, timeout=30)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
        try:
            return client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, "prefect server /api/health", deadline=180)
        FIGURES["server_start_s"] = time.monotonic() - started
        print(f"\n[figure] prefect server start: {FIGURES['server_start_s']:.1f} s")
        yield Server(api, env, client)
    finally:
        client.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@dataclass
class Served:
    warehouse: Path
    deployment: dict[str, Any]
    server: Server
    proc: subprocess.Popen[bytes]

    def run(self, parameters: dict[str, Any]) -> httpx.Response:
        """Create a flow run the way the UI's Run button does (POST .../create_flow_run).

        A 5xx (SQLite busy on a loaded 2-core machine) is retried, as a person would click again.
        """
        def post() -> httpx.Response | None:
            r = self.server.client.post(f"/deployments/{self.deployment['id']}/create_flow_run", json={
                "parameters": parameters, "state": {"type": "SCHEDULED", "message": "Run from the Prefect UI"},
            })
            return None if r.status_code >= 500 else r

        return wait_for(post, "the API to accept a flow run request", deadline=30, every=1)

    def finished(self, run_id: str, deadline: float = 240) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError("newsflow serve exited")
            fr = self.server.client.get(f"/flow_runs/{run_id}").json()
            return fr if fr["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        return wait_for(done, f"flow run {run_id}", deadline=deadline)

    def sql(self, text: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.warehouse), read_only=True) as conn:
            return conn.execute(text).fetchall()


@pytest.fixture
def served(prefect_server: Server, tmp_path: Path) -> Iterator[Served]:
    """`newsflow serve` against the server, over the demo snapshot and a fresh warehouse; stopped with SIGTERM."""
    with LocalServer(DEMO_DATA) as demo:
        db = tmp_path / "wh" / "demo.duckdb"
        config = demo_config(demo, db, tmp_path)
        env = {**prefect_server.env, "PYTHONUNBUFFERED": "1", "NEWSFLOW_PIPELINE__WORKERS": "1",
               "NEWSFLOW_HEALTH__ALERT_AFTER_FAILURES": "1"}
        log = (tmp_path / "serve.log").open("w")
        proc = subprocess.Popen([str(BIN / "newsflow"), "serve", "--config", str(config)], env=env, stdout=log,
                                stderr=subprocess.STDOUT, cwd=tmp_path)
        client = prefect_server.client

        def deployed() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise AssertionError(f"newsflow serve exited: {(tmp_path / 'serve.log').read_text()[-3000:]}")
            r = client.get("/deployments/name/ingest/newsflow")
            if r.status_code != 200 or r.json()["parameters"].get("config") != str(config.resolve()):
                return None
            return r.json()

        def polling() -> bool:
            return "being served and polling" in " ".join((tmp_path / "serve.log").read_text().split())

        try:
            deployment = wait_for(deployed, "the ingest deployment", deadline=90)
            wait_for(polling, "newsflow serve to start polling", deadline=60)
            yield Served(db, deployment, prefect_server, proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            finally:
                log.close()
            assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
            # Stopped cleanly: nobody serves it now, so the schedule shows paused in the UI.
            assert client.get(f"/deployments/{deployment['id']}").json()["paused"] is True


def _artifacts(server: Server, run_id: str) -> dict[str, dict[str, Any]]:
    r = server.client.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    return {a["key"]: a for a in r.json() if a["key"]}


def _states(server: Server, run_id: str) -> list[str]:
    return [s["name"] for s in server.client.get("/flow_run_states/", params={"flow_run_id": run_id}).json()]


def test_ui_run_with_custom_parameters(served: Served) -> None:
    dep, client = served.deployment, served.server.client
    # The deployment as the UI shows it: cron schedule with its timezone, one run at a time, a typed form.
    (sched,) = dep["schedules"]
    assert sched["schedule"] == {"cron": "*/30 * * * *", "timezone": "UTC", "day_or": True}
    assert sched["active"] is True and dep["paused"] is False
    assert dep["global_concurrency_limit"]["limit"] == 1
    assert dep["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    form = dep["parameter_openapi_schema"]["properties"]
    assert "Harbour Herald" in form["feeds"]["anyOf"][0]["items"]["enum"]
    assert form["max_articles_per_feed"]["anyOf"][0]["maximum"] == 1000
    assert form["dry_run"]["description"].startswith("Fetch, extract and tag")
    assert dep["enforce_parameter_schema"] is True
    # The scheduler fills in upcoming runs on the half hour.
    upcoming = wait_for(lambda: client.post("/flow_runs/filter", json={
        "flow_runs": {"deployment_id": {"any_": [dep["id"]]}, "state": {"type": {"any_": ["SCHEDULED"]}}},
    }).json(), "scheduled runs of the ingest deployment", deadline=90, every=1)
    starts = [datetime.fromisoformat(r["expected_start_time"]) for r in upcoming]
    assert all(t.minute in (0, 30) and t.second == 0 for t in starts)

    # Bad parameters are refused by the API; no run is created. (A malformed date passes the API, which does not
    # check string formats, and fails the run at once when the flow validates its parameters.)
    for bad in ({"max_articles_per_feed": 5000}, {"feeds": ["No Such Feed"]}, {"dry_run": "perhaps"}):
        r = served.run(bad)
        assert r.status_code in (409, 422), (bad, r.status_code, r.text)

    # Custom parameters, as typed into the form.
    r = served.run({"tags": ["world"], "max_articles_per_feed": 2})
    assert r.status_code == 201, r.text
    fr = served.finished(r.json()["id"])
    assert fr["state"]["type"] == "COMPLETED", fr["state"]
    assert fr["parameters"]["max_articles_per_feed"] == 2

    per_feed = dict(served.sql("select feed, count(*) from articles where not is_seed group by feed"))
    dups = dict(served.sql("select feed, count(*) from duplicates group by feed"))
    world = {"Harbour Herald", "The Valley Ledger", "Meridian Post", "Meridian Sunday"}
    assert set(per_feed) | set(dups) <= world and per_feed
    assert all(per_feed.get(f, 0) + dups.get(f, 0) <= 2 for f in world)
    (params,) = served.sql(f"select parameters from runs where run_id = '{fr['id']}' and status = 'completed'")[0]
    assert json.loads(params)["tags"] == ["world"]

    arts = _artifacts(served.server, fr["id"])
    assert arts["ingest-summary"]["type"] == "table"
    table = json.loads(arts["ingest-summary"]["data"])
    stored = served.sql(f"select count(*) from articles where run_id = '{fr['id']}'")[0][0]  # seed included
    assert {"metric": "articles new", "value": stored} in table and stored > sum(per_feed.values()) - 1
    assert arts["ingest-report"]["type"] == "markdown"
    assert "## Top entities of this run" in arts["ingest-report"]["data"]
    # The runner ships logs in the background, after the state change: poll for them with a deadline.
    deadline, messages = time.monotonic() + 60, []
    while time.monotonic() < deadline:
        logs = client.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [fr["id"]]}}, "limit": 200,
                                                 "sort": "TIMESTAMP_ASC"}).json()
        messages = [log["message"] for log in logs]
        if any("feeds:" in m for m in messages):
            break
        time.sleep(0.5)  # polling interval, bounded by the deadline
    assert any("feeds:" in m for m in messages), messages[-10:]


def test_two_runs_at_once_are_serialised(served: Served) -> None:
    client = served.server.client
    created = [served.run({}) for _ in range(2)]
    assert [r.status_code for r in created] == [201, 201], [r.text for r in created]
    ids = [r.json()["id"] for r in created]
    runs = [served.finished(i) for i in ids]
    assert [r["state"]["type"] for r in runs] == ["COMPLETED", "COMPLETED"], [r["state"] for r in runs]
    # ENQUEUE: one of them waited for the slot, then ran; the two never ran at the same time.
    waited = [i for i in ids if "AwaitingConcurrencySlot" in _states(served.server, i)]
    assert len(waited) == 1, [_states(served.server, i) for i in ids]
    first, second = sorted(runs, key=lambda r: r["start_time"])
    assert first["end_time"] <= second["start_time"]
    rows = served.sql("select run_id, status, started_at, finished_at from runs where flow = 'ingest' "
                      "order by started_at")
    assert [r[1] for r in rows] == ["completed", "completed"]
    assert rows[0][3] <= rows[1][2]
    # The queued run found everything already stored.
    assert served.sql(f"select articles_new from runs where run_id = '{second['id']}'") == [(0,)]
    FIGURES["queued_run_no_new_s"] = second["total_run_time"]

    # A run with nothing new, as the next half-hourly run would be: its overhead end to end.
    created = time.monotonic()
    r = served.run({})
    assert r.status_code == 201, r.text
    fr = served.finished(r.json()["id"])
    FIGURES["idle_run_wall_s"] = time.monotonic() - created
    FIGURES["idle_run_total_run_time_s"] = fr["total_run_time"]
    assert fr["state"]["type"] == "COMPLETED"
    print(f"\n[figure] run with no new articles: {FIGURES['idle_run_wall_s']:.1f} s from the Run button to "
          f"Completed, {fr['total_run_time']:.1f} s inside the flow run")

    # Feeds over the alert threshold (1 here) are logged at ERROR and emitted as events for an automation.
    def errors() -> list[str]:  # the run's logs arrive shortly after its final state
        return [log["message"] for log in client.post("/logs/filter", json={
            "logs": {"flow_run_id": {"any_": [fr["id"]]}, "level": {"ge_": 40}}}).json()]

    wait_for(lambda: any("Broken Feed" in m for m in errors()), "the ERROR log of a failing feed", 30)
    report = _artifacts(served.server, first["id"])["ingest-report"]["data"]
    assert "Gone Gazette" in report and "**ALERT**" in report

    def feed_events() -> set[str]:
        r = client.post("/events/filter", json={"filter": {"event": {"name": ["newsflow.feed.failing"]},
                                                           "occurred": {"since": "2000-01-01T00:00:00Z",
                                                                        "until": datetime.now(UTC).isoformat()}}})
        return {e["resource"]["prefect.resource.name"] for e in r.json()["events"]}

    assert wait_for(lambda: {"Broken Feed", "Gone Gazette"} <= feed_events(), "newsflow.feed.failing events", 30)


def test_documented_automations_are_accepted(prefect_server: Server) -> None:
    """automations/newsflow.yaml, with a block id filled in, is accepted by the API as `prefect automation create`."""
    import uuid

    import yaml
    from prefect.events.schemas.automations import AutomationCore

    from flows.core.settings import PROJECT_ROOT

    client = prefect_server.client
    for spec in yaml.safe_load((PROJECT_ROOT / "automations" / "newsflow.yaml").read_text())["automations"]:
        spec["actions"][0]["block_document_id"] = str(uuid.uuid4())
        body = AutomationCore.model_validate(spec).model_dump(mode="json")
        r = client.post("/automations/", json=body)
        assert r.status_code == 201, r.text
        stored = client.get(f"/automations/{r.json()['id']}").json()
        assert sorted(stored["trigger"]["expect"]) == sorted(spec["trigger"]["expect"])
