"""How `newsflow` ends when its caller stops it or stops reading (issue 20, cases 12, 18, 19), through real
`newsflow` processes: SIGTERM is one line and exit 143 with nothing left running (the temporary Prefect server
and the process-pool workers included) and the caller's pipes at EOF; after SIGKILL the temporary server and
the workers end on their own; a reader that closes stdout early gets a
quiet exit 141; `sql --format json` prints JSON every parser reads.

Covers: flows.run.shutdown, flows.core.jsonvalues
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import duckdb
import pytest

from flows.core.settings import PROJECT_ROOT, WarehouseSettings
from flows.ops.localserver import LocalServer
from flows.run.shutdown import EXIT_SIGINT, EXIT_SIGTERM, GRACE_SECONDS
from flows.warehouse import database

NEWSFLOW = [sys.executable, "-m", "flows.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NEWSFLOW_"))}
    env.update({"PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1", "NO_PROXY": "127.0.0.1"}, **extra)
    return env


def _until(condition: Callable[[], bool], what: str, proc: subprocess.Popen[bytes] | None = None,
           deadline_s: float = 240) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            pytest.fail(f"newsflow ended (rc {proc.returncode}) before {what}: {err[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)  # the polling interval of the condition, not synchronisation by itself


def _group(pgid: int) -> list[str]:
    """The live processes of process group `pgid` (zombies, already dead, left out), as `pid cmdline`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended while being read
        fields = stat.rsplit(")", 1)[1].split()  # after `pid (comm)`: state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(f"{entry.name} {cmd[:120]}")
    return out


def _servers(pid: int) -> list[int]:
    """The temporary Prefect servers newsflow `pid` started: its children running uvicorn (in a session of their
    own, so not in `_group(pid)`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"uvicorn" in cmd and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _alive(pids: list[int]) -> list[int]:
    """Those of `pids` still running (not gone, not a zombie)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out


def _held_config(tmp_path: Path, held: HeldFeed) -> Path:
    config = tmp_path / "newsflow.toml"
    config.write_text(f'[warehouse]\npath = "{tmp_path / "wh.duckdb"}"\nstaging_dir = "{tmp_path / "staging"}"\n'
                      f'snapshot_path = "{tmp_path / "snap.duckdb"}"\n[fetch]\nallow_private_networks = true\n'
                      f'respect_robots = false\nread_timeout = 120\ntotal_timeout = 120\n'
                      f'[pipeline]\nseeds_dir = "{tmp_path / "seeds"}"\n'
                      f'[[feeds]]\nname = "held"\nurl = "{held.base}/held.xml"\n')
    return config


class HeldFeed(LocalServer):
    """A loopback server whose one feed never answers: a run waits in its fetch stage until stopped."""

    def __init__(self, root: Path) -> None:
        self.requested = threading.Event()
        self.release = threading.Event()
        super().__init__(root, routes={"/held.xml": self._held})

    def _held(self, handler: BaseHTTPRequestHandler) -> None:
        self.requested.set()
        self.release.wait(120)
        handler.send_response(503)
        handler.end_headers()


@pytest.fixture
def held_feed(tmp_path: Path) -> Iterator[HeldFeed]:
    root = tmp_path / "site"
    root.mkdir()
    with HeldFeed(root) as server:
        yield server
        server.release.set()


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_a_stop_ends_ingest_with_one_line_and_nothing_left_running(held_feed: HeldFeed, tmp_path: Path,
                                                                   how: str) -> None:
    """No PREFECT_API_URL: the run uses Prefect's temporary server, which must end with it and never hold the
    caller's pipes. `ctrl-c`: SIGINT to the whole process group, as a terminal sends it; the server, in that
    group then, died with newsflow, whose client retried the gone API for minutes instead of exiting 130."""
    config = _held_config(tmp_path, held_feed)
    proc = subprocess.Popen([*NEWSFLOW, "ingest", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env(PREFECT_HOME=str(tmp_path / "prefect")),
                            cwd=tmp_path, start_new_session=True)
    servers: list[int] = []
    try:
        _until(held_feed.requested.is_set, "the feed request", proc)
        servers = _servers(proc.pid)
        assert servers, "no temporary Prefect server to check"
        started = time.monotonic()
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)  # returns at EOF of both pipes: no child holds them
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in _alive(servers) if proc.returncode is None else ():
            os.kill(pid, signal.SIGKILL)
    lines = [line for line in err.decode().splitlines() if line.startswith("newsflow: ")]
    print(f"\n[figure] {how} to exit and EOF: {took:.1f} s")
    code, line = (EXIT_SIGTERM, "newsflow: terminated (SIGTERM)") if how == "sigterm" else (
        EXIT_SIGINT, "newsflow: interrupted")
    assert proc.returncode == code, err.decode()[-3000:]
    assert lines == [line], err.decode()[-3000:]
    assert took < GRACE_SECONDS + 5
    _until(lambda: not _group(proc.pid) and not _alive(servers), "the run's processes to end", deadline_s=10)
    log = (tmp_path / "prefect" / "newsflow-temporary-server.log")
    assert log.exists(), "the temporary server's output did not go to its log"


def test_the_temporary_server_ends_when_newsflow_is_killed(held_feed: HeldFeed, tmp_path: Path) -> None:
    """SIGKILL to `newsflow ingest` leaves it no time to stop the temporary Prefect server: the server's own
    watching thread (shutdown._WATCH_PARENT) must end it."""
    config = _held_config(tmp_path, held_feed)
    proc = subprocess.Popen([*NEWSFLOW, "ingest", "--config", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=_env(PREFECT_HOME=str(tmp_path / "prefect")),
                            cwd=tmp_path, start_new_session=True)
    servers: list[int] = []
    try:
        _until(held_feed.requested.is_set, "the feed request", proc)  # the run is under way on the server
        servers = _servers(proc.pid)
        assert len(servers) == 1, f"no temporary Prefect server to check: {_group(proc.pid)}"
        proc.kill()
        proc.wait()
        killed = time.monotonic()
        _until(lambda: not _alive(servers), "the temporary server to end after newsflow's SIGKILL", deadline_s=20)
        print(f"\n[figure] temporary server gone {time.monotonic() - killed:.1f} s after newsflow's SIGKILL")
    finally:
        for pid in [*(int(p.split()[0]) for p in _group(proc.pid)), *_alive(servers)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.stderr:
            proc.stderr.close()


def test_pool_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves no time for any cleanup: the workers must notice on their own (exit_with_parent)."""
    script = ("import os, sys\n"
              "from flows.core.settings import load_settings\n"
              "from flows.run import workers\n"
              "pool = workers.make_pool(load_settings(sys.argv[1], env={}))\n"
              "pids = {pool.submit(os.getpid).result() for _ in range(20)}\n"  # after warm_up: workers idle
              "print(' '.join(map(str, sorted(pids))), flush=True)\n"
              "sys.stdin.read()\n")
    config = tmp_path / "c.toml"
    config.write_text(f'[pipeline]\nworkers = 2\nseeds_dir = "{tmp_path}"\n')
    proc = subprocess.Popen([sys.executable, "-c", script, str(config)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=_env(), start_new_session=True)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert pids, "the pool reported no workers"
        proc.kill()
        proc.wait()
        killed = time.monotonic()
        _until(lambda: not _group(proc.pid), "the pool workers to end after their parent", deadline_s=10)
        print(f"\n[figure] pool workers gone {time.monotonic() - killed:.1f} s after their parent's SIGKILL")
    finally:
        for pid in _group(proc.pid):
            os.kill(int(pid.split()[0]), signal.SIGKILL)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("pipe") / "wh.duckdb"
    assert database.ensure_ready(WarehouseSettings(path=db, staging_dir=db.parent / "s",
                                                    snapshot_path=db.parent / "snap.duckdb"))
    return db


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_a_reader_closing_stdout_early_gets_a_quiet_exit_141(warehouse: Path, fmt: str) -> None:
    """`newsflow sql ... | head -1`: as a Unix tool killed by SIGPIPE (the shell's 141), without a word."""
    proc = subprocess.Popen([*NEWSFLOW, "sql", "--warehouse", str(warehouse), "--format", fmt, "--max-rows",
                             "1000000", "select range as n, 'padding padding padding' as p from range(300000)"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    assert proc.stdout is not None and proc.stderr is not None
    # The first line, as `head -1` reads it; then the reader goes, with most of the output still to come.
    assert select.select([proc.stdout], [], [], 120)[0], "no output"
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


def test_sql_json_is_valid_json_for_every_kind_of_value(warehouse: Path) -> None:
    query = ("select 'inf'::double as inf, 'nan'::double as nan, '-inf'::float as ninf, "
             "'{\"a\": [1, 2.5, null]}'::json as doc, ['{\"b\": true}'::json] as docs, "
             "123.45::decimal(10, 2) as price, 12345678901234567890::decimal(38, 0) as big, "
             "date '2026-11-30' as day, timestamptz '2026-11-30 12:00:00+00' as at, interval 90 minute as took, "
             "'\\x00\\xff'::blob as raw, map(['k'], [1.5]) as m, {'x': 'nan'::double, 'y': 'é'} as s, "
             "null as nothing")
    proc = subprocess.run([*NEWSFLOW, "sql", "--warehouse", str(warehouse), "--format", "json", query],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert row == {"inf": None, "nan": None, "ninf": None, "doc": {"a": [1, 2.5, None]}, "docs": [{"b": True}],
                   "price": 123.45, "big": 12345678901234567890, "day": "2026-11-30",
                   "at": "2026-11-30T12:00:00+00:00", "took": 5400.0, "raw": "AP8=", "m": {"k": 1.5},
                   "s": {"x": None, "y": "é"}, "nothing": None}
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in row.values())


def test_json_lines_of_generated_values_parse_and_round_trip() -> None:
    """Through the real DuckDB: any double, decimal, text or JSON document written into a typed table comes out
    of row_json as a JSON value equal to it (non-finite doubles as null)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from flows.core.jsonvalues import row_json

    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")  # what DuckDB text holds
    docs = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(chars, max_size=8)
                        | st.floats(allow_nan=False, allow_infinity=False),
                        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(chars, max_size=5), kids,
                                                                                    max_size=3), max_leaves=8)
    conn = duckdb.connect()
    conn.execute("create table t (f double, d decimal(18, 3), s varchar, j json, l double[])")

    @settings(max_examples=60, deadline=None)
    @given(st.floats(), st.decimals(min_value=-10**14, max_value=10**14, places=3, allow_nan=False),
           st.text(chars, max_size=20), docs, st.lists(st.floats(), max_size=4))
    def check(f: float, d: object, s: str, doc: object, floats: list[float]) -> None:
        conn.execute("delete from t")
        conn.execute("insert into t values (?, ?, ?, ?, ?)", [f, d, s, json.dumps(doc), floats])
        rel = conn.sql("select * from t")
        line = row_json(rel.columns, rel.types, rel.fetchone())
        back = json.loads(line, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
        assert back["f"] == (f if math.isfinite(f) else None)
        assert back["d"] == pytest.approx(float(d))  # type: ignore[arg-type]
        assert back["s"] == s
        assert back["j"] == json.loads(json.dumps(doc))
        assert back["l"] == [x if math.isfinite(x) else None for x in floats]

    check()
