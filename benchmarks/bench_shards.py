"""Fan-out throughput: articles/s of `newsflow fanout --shards N` with N process workers, N = 1, 2, 4.

A real `prefect server start`, a process work pool, N `prefect worker start` processes and the deployments of
prefect.yaml, all on loopback. The benchmark site (benchmarks/site.py) is served from 8 loopback addresses
(127.0.0.2-9) with its feeds spread over them, since shards split feeds by host. Each N starts from an empty
warehouse; the time is the whole `newsflow fanout` command (shard runs, then the loader and its checks).

    python -m benchmarks.bench_shards [--variants 1] [--workers 1 2 4]

Not part of `make bench` (it needs minutes and the whole machine); results go to docs/scale.md by hand.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import duckdb
import httpx

from benchmarks.site import build
from flows.core.settings import PROJECT_ROOT
from flows.ops.localserver import LocalServer

BIN = Path(sys.executable).parent
HOSTS = [f"127.0.0.{i}" for i in range(2, 10)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _until(cond: object, what: str, deadline: float = 300) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.5)  # polling a condition
    raise RuntimeError(f"timed out waiting for {what}")


def _config(tmp: Path, servers: list[LocalServer], feeds: list[str]) -> Path:
    (tmp / "seeds").mkdir(exist_ok=True)
    db = tmp / "wh" / "bench.duckdb"
    text = (f'[warehouse]\npath = "{db}"\nstaging_dir = "{db.with_suffix(".staging")}"\n'
            f'snapshot_path = "{db.with_suffix(".snapshot.duckdb")}"\n'
            "[fetch]\nallow_private_networks = true\nmin_host_delay = 0\nper_host_concurrency = 4\n"
            f'max_articles_per_feed = 1000\n[pipeline]\nworkers = 1\nseeds_dir = "{tmp / "seeds"}"\n')
    text += "".join(f'[[feeds]]\nname = "{f}"\nurl = "{servers[i % len(servers)].url("/feeds/" + f)}"\n'
                    for i, f in enumerate(feeds))
    path = tmp / "newsflow.toml"
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", type=int, default=1)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        site = build(tmp / "site", variants=args.variants, feeds=16)
        servers = [stack.enter_context(LocalServer(site.root, host=h)) for h in HOSTS]
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
            "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_UI_ENABLED": "false",
            "NO_PROXY": "127.0.0.1,localhost", "PYTHONPATH": str(PROJECT_ROOT), "NEWSFLOW_ROOT": str(PROJECT_ROOT),
            "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2"}
        server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                                   str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        stack.callback(lambda: (os.killpg(server.pid, signal.SIGTERM), server.wait(30)))
        api = httpx.Client(base_url=env["PREFECT_API_URL"], trust_env=False, timeout=30)

        def healthy() -> bool:
            try:
                return api.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        _until(healthy, "prefect server")
        subprocess.run([str(BIN / "prefect"), "work-pool", "create", "newsflow", "--type", "process"], env=env,
                       check=True, capture_output=True)
        subprocess.run([str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "ingest/shard", "--name",
                        "load/newsflow"], env=env, cwd=PROJECT_ROOT, check=True, capture_output=True)
        print(f"{site.pages} pages in 16 feeds on {len(HOSTS)} loopback hosts, "
              f"{os.cpu_count()} cores; one extraction process per shard run")
        print("| workers = shards | articles stored | fan-out wall time (s) | articles/s |")
        print("|---|---|---|---|")
        for n in args.workers:
            run_dir = tmp / f"run{n}"
            run_dir.mkdir()
            config = _config(run_dir, servers, site.feeds)
            workers = [subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "newsflow", "--name",
                                         f"w{n}-{i}"], env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True) for i in range(n)]
            try:
                _until(lambda: api.get("/work_pools/newsflow").json()["status"] == "READY", "workers")
                started = time.monotonic()
                subprocess.run([str(BIN / "newsflow"), "fanout", "--shards", str(n), "--config", str(config)],
                               env=env, cwd=run_dir, check=True, capture_output=True)
                wall = time.monotonic() - started
            finally:
                for w in workers:
                    os.killpg(w.pid, signal.SIGTERM)
                for w in workers:
                    w.wait(60)
            with duckdb.connect(str(run_dir / "wh" / "bench.duckdb"), read_only=True) as conn:
                stored = conn.execute("select count(*) from articles").fetchall()[0][0]
            print(f"| {n} | {stored} | {wall:.1f} | {stored / wall:.2f} |", flush=True)


if __name__ == "__main__":
    main()
