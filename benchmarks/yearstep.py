"""One measured `ingest` flow run in its own process, for benchmarks/bench_year.py:

    python -m benchmarks.yearstep CONFIG        # prints one JSON line: wall, steps, memory, bytes written

The run's steps are timed by wrapping the functions the flow calls (STEPS: module attribute -> step name; a
name a later version no longer has is reported as absent, never an error). The process tree is sampled every
0.2 s for peak resident memory (VmHWM) and bytes written to storage (/proc/<pid>/io write_bytes): this process
(the flow's parent) and the warm pool's workers separately. The Prefect API server is the parent's
(PREFECT_API_URL), so its own database writes are not counted.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.bench_ingest import _descendants, _role

# (module, attribute) -> step. Nested steps (dedup inside load) are timed on their own as well.
STEPS: dict[tuple[str, str], str] = {
    ("flows.warehouse.runstate", "start_run"): "start (hints, dead runs)",
    ("flows.run.ingest", "fetch_feeds_task"): "feeds",
    ("flows.warehouse.store", "store"): "load (stage + load + checkpoint)",
    ("flows.warehouse.store", "load_pending"): "load staged leftovers",
    ("flows.warehouse.writer", "decide"): "dedup decision",
    ("flows.warehouse.keycache", "safe_refresh"): "lookup cache refresh",
    ("flows.warehouse.checks", "run_and_store"): "checks",
    ("flows.run.artifacts", "read_end"): "end reads (report rows, alerts)",
    ("flows.run.finish", "publish_snapshot_task"): "snapshot publish",
    ("flows.run.finish", "refresh_search"): "search refresh",
    ("flows.run.finish", "write_html_report"): "report page (html_path)",
    ("flows.run.ingest", "publish_report"): "artifacts + alerts",
    ("flows.run.modes", "finish_run"): "finish (row, checks, snapshot, search, page)",
}


class Timers:
    """Seconds and calls per step, from wrappers put in place of the functions STEPS names."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.absent: list[str] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        for (module, attr), step in STEPS.items():
            try:
                mod = importlib.import_module(module)
            except ImportError:
                mod = None
            original = getattr(mod, attr, None) if mod is not None else None
            if original is None:
                self.absent.append(step)
                continue
            setattr(mod, attr, self._wrap(step, original))

    def _wrap(self, step: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - start
                    self.calls[step] = self.calls.get(step, 0) + 1
        return timed


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _write_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeSampler:
    """Peak memory and bytes written of this process and its descendants, by role, sampled in a thread."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.peak_kib: dict[int, int] = {}
        # Of the resident memory, what is not file pages mapped in (the lookup cache's memory-mapped arrays are
        # clean page cache the kernel reclaims under pressure): sampled, so a spike shorter than `every` is missed.
        self.anon_kib: dict[int, int] = {}
        self.written: dict[int, list[int]] = {}  # pid -> [write_bytes first seen, latest]
        self.roles: dict[int, str] = {}
        self._stop = threading.Event()

    def sample(self) -> None:
        me = os.getpid()
        for pid in [me, *_descendants(me)]:
            if pid not in self.roles:
                self.roles[pid] = "parent" if pid == me else _role(pid)
            self.peak_kib[pid] = max(self.peak_kib.get(pid, 0), _status_kib(pid, "VmHWM"))
            self.anon_kib[pid] = max(self.anon_kib.get(pid, 0), _status_kib(pid, "RssAnon"))
            wb = _write_bytes(pid)
            seen = self.written.setdefault(pid, [wb, wb])
            seen[1] = max(seen[1], wb)

    def __enter__(self) -> TreeSampler:
        self.sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def by_role(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for pid, role in self.roles.items():
            r = out.setdefault(role, {"peak_mib_max": 0.0, "peak_mib_sum": 0.0, "anon_mib_max": 0.0, "written_mib": 0.0,
                                      "processes": 0})
            peak = self.peak_kib.get(pid, 0) / 1024
            r["peak_mib_max"] = max(r["peak_mib_max"], peak)
            r["anon_mib_max"] = max(r["anon_mib_max"], self.anon_kib.get(pid, 0) / 1024)
            r["peak_mib_sum"] += peak
            first, last = self.written.get(pid, [0, 0])
            r["written_mib"] += (last - first) / 2**20
            r["processes"] += 1
        return out


def measure(config: Path, warm: bool = True) -> dict[str, Any]:
    """One ingest flow run over `config`, timed step by step."""
    from flows.core.settings import load_settings
    from flows.run import workers
    from flows.run.ingest import ingest

    timers = Timers()
    timers.install()
    settings = load_settings(config, env={})
    pool = workers.WarmPool(settings) if warm else None
    os.environ.update(pool.env() if pool else {})
    try:
        with TreeSampler() as tree:
            start = time.perf_counter()
            summary = ingest(config=str(config))
            wall = time.perf_counter() - start
    finally:
        if pool:
            pool.close()
    return {"wall": wall, "steps": timers.seconds, "calls": timers.calls, "absent": timers.absent,
            "summary": {k: v for k, v in summary.items() if isinstance(v, int | float | str | type(None))},
            "tree": tree.by_role()}


HWM_MARK = "YEARSTEP_HWM_KIB"


def cli(args: list[str]) -> int:
    """`python -m benchmarks.yearstep --cli ARGS`: `newsflow ARGS` in this process, then its own peak memory on the
    last line of stderr (wait4's ru_maxrss would start from the benchmark's own size: Linux keeps it across exec)."""
    from flows.cli import main as newsflow

    code = 1
    try:
        code = newsflow(args)
    finally:
        print(f"\n{HWM_MARK} {_status_kib(os.getpid(), 'VmHWM')}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str]) -> None:
    if argv[:1] == ["--cli"]:
        raise SystemExit(cli(argv[1:]))
    result = measure(Path(argv[0]), warm="--cold" not in argv)
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
