"""`newsflow serve` stops within 10 s of SIGTERM whatever the Prefect API's state, against a real
`prefect server start` on loopback that this test starts and then stops (so it has its own, not the session's).

Covers: flows.ops.deploy
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_prefect_server import BIN, _free_port, wait_for

from flows.ops.demo import DEMO_DATA, demo_config
from flows.ops.localserver import LocalServer

pytestmark = pytest.mark.prefect_server

STOP_WITHIN = 10.0


class PrefectServer:
    """A `prefect server start` process on a free loopback port with its own PREFECT_HOME."""

    def __init__(self, home: Path) -> None:
        self.port = _free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        self.env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                         "PREFECT_UI_ENABLED": "false", "PREFECT_API_URL": self.api,
                         "NO_PROXY": "127.0.0.1,localhost"})
        self.log = home / "server.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.client = httpx.Client(base_url=self.api, trust_env=False, timeout=10)

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prefect server exited: {self.log.read_text()[-2000:]}")
        try:
            return self.client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # as a crash or an OOM kill would: no goodbye
        self.proc.wait()


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[PrefectServer]:
    server = PrefectServer(tmp_path)
    try:
        wait_for(server.healthy, "prefect server /api/health", deadline=180)
        yield server
    finally:
        server.client.close()
        server.stop()


def _serve(server: PrefectServer, config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`newsflow serve` against the server, its schedule far away so no run starts during the test."""
    env = {**server.env, "PYTHONUNBUFFERED": "1", "NEWSFLOW_PIPELINE__WORKERS": "1",
           "NEWSFLOW_SCHEDULE__CRON": "0 0 1 1 *"}
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "newsflow"), "serve", "--config", str(config)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=log.parent)

    def polling() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"newsflow serve exited: {log.read_text()[-3000:]}")
        return "being served and polling" in " ".join(log.read_text().split())

    wait_for(polling, "newsflow serve to start polling", deadline=120)
    return proc


def _stop(proc: subprocess.Popen[bytes], log: Path) -> tuple[int, float]:
    """SIGTERM, then the exit code and the seconds it took (the process is killed if it takes over 60 s)."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"newsflow serve still running 60 s after SIGTERM: {log.read_text()[-3000:]}") from None
    return code, time.monotonic() - started


def test_serve_stops_within_10s_with_the_api_up_or_down(prefect_server: PrefectServer, tmp_path: Path) -> None:
    with LocalServer(DEMO_DATA) as demo:
        config = demo_config(demo, tmp_path / "wh" / "demo.duckdb", tmp_path)

        # API up: the graceful path, which pauses the schedule on the way out.
        up_log = tmp_path / "serve-up.log"
        proc = _serve(prefect_server, config, up_log)
        code, took = _stop(proc, up_log)
        print(f"\n[figure] serve stop with the API up: {took:.1f} s")
        assert code == 0, up_log.read_text()[-3000:]
        assert took < STOP_WITHIN, up_log.read_text()[-3000:]
        dep = prefect_server.client.get("/deployments/name/ingest/newsflow").json()
        assert dep["paused"] is True

        # API down: the goodbye calls cannot succeed; the process must still be gone in time.
        down_log = tmp_path / "serve-down.log"
        proc = _serve(prefect_server, config, down_log)
        prefect_server.stop()
        assert prefect_server.proc.poll() is not None
        with pytest.raises(httpx.TransportError):
            prefect_server.client.get("/health")
        code, took = _stop(proc, down_log)
        print(f"[figure] serve stop with the API down: {took:.1f} s")
        assert took < STOP_WITHIN, down_log.read_text()[-3000:]
        assert code == 0, down_log.read_text()[-3000:]
