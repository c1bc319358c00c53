"""End to end against the CPU bound: a full ingest of a local site, and extraction + NER alone on the same pages
with every core busy. Also the resident memory of the run over time (it must stay flat)."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks import site
from flows.core.settings import Settings, load_settings


def write_config(tmp: Path, base: str | list[str], feeds: list[str], *, feed_dir: str = "feeds", extra: str = "",
                 polite: bool = False) -> Path:
    """A config with loopback allowed, a warehouse and an empty seed folder in `tmp`, and the given feeds.

    Feeds are spread over the `base` URLs (several loopback hosts) in blocks, as a config lists an outlet's
    section feeds together: the first feeds on the first host, and so on. `polite` keeps the default politeness
    (`min_host_delay`, `per_host_concurrency`) instead of turning it off.
    """
    (tmp / "seeds").mkdir(exist_ok=True)
    bases = [base] if isinstance(base, str) else base
    text = (
        f'[warehouse]\npath = "{tmp / "wh.duckdb"}"\nstaging_dir = "{tmp / "staging"}"\n'
        f'snapshot_path = "{tmp / "snapshot.duckdb"}"\n'
        "[fetch]\nallow_private_networks = true\nmax_articles_per_feed = 1000\n"
        + ("" if polite else "min_host_delay = 0\nper_host_concurrency = 4\n")
        + f'[pipeline]\nseeds_dir = "{tmp / "seeds"}"\n' + extra
    )
    text += "".join(f'[[feeds]]\nname = "{f}"\nurl = "{bases[i * len(bases) // len(feeds)]}/{feed_dir}/{f}"\n'
                    for i, f in enumerate(feeds))
    path = tmp / "newsflow.toml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- memory

def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    pids = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
    except OSError:
        pass
    return pids


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _state(pid: int) -> str:
    """The process's scheduler state: R running or runnable, S sleeping (a pool worker waiting for work) ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "?"


def _descendants(pid: int) -> list[int]:
    pids, todo = [], _children(pid)
    while todo:
        pids.append(todo.pop())
        todo += _children(pids[-1])
    return pids


def _role(pid: int) -> str:
    """Which part of the benchmark a descendant process is, by its command line."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "other"
    if b"benchmarks.serve" in cmd:
        return "page server"
    if b"spawn_main" in cmd:  # a warm pool's server spawned its workers: it holds no model
        return "pool server" if _children(pid) else "pool workers"
    if b"prefect" in cmd or b"uvicorn" in cmd:
        return "Prefect API server"
    return "other"


@dataclass
class MemorySampler:
    """RSS of this process and of the pool workers, sampled every `every` seconds in a thread; and the CPU seconds
    of this process and of each of its descendants over the same time, by role (`cpu()`)."""

    every: float = 0.5
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, parent KiB, workers KiB)
    _stop: threading.Event = field(default_factory=threading.Event)
    _cpu: dict[int, list[Any]] = field(default_factory=dict)  # pid -> [role, CPU s at the start, latest CPU s]
    waiting: list[int] = field(default_factory=lambda: [0, 0])  # pool worker samples asleep (waiting), all

    def __enter__(self) -> MemorySampler:
        self._start = time.perf_counter()
        self._sample_cpu(first=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _sample_cpu(self, first: bool = False, pids: list[int] | None = None) -> list[int]:
        """Note the CPU seconds of this process and its descendants (`pids`, else found now); returns them."""
        pids = _descendants(os.getpid()) if pids is None else pids
        for pid in [os.getpid(), *pids]:
            now = _cpu_seconds(pid)
            if pid not in self._cpu:
                role = "parent" if pid == os.getpid() else _role(pid)
                self._cpu[pid] = [role, now if first else 0.0, now]  # a process started during the run counts whole
            self._cpu[pid][2] = max(self._cpu[pid][2], now)
        return pids

    def _run(self) -> None:
        pids: list[int] = []
        n = 0
        while not self._stop.wait(self.every):
            # The process tree is walked every 8th sample only: walking it costs this (measured) process more
            # than reading a few /proc files.
            pids = self._sample_cpu(pids=None if n % 8 == 0 else pids)
            n += 1
            workers = [p for p in pids if self._cpu[p][0] == "pool workers"]
            self.samples.append((time.perf_counter() - self._start, _rss_kib(os.getpid()),
                                 sum(_rss_kib(p) for p in workers)))
            states = [_state(p) for p in workers]
            self.waiting[0] += states.count("S")
            self.waiting[1] += len(states)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample_cpu()
        self.wall = time.perf_counter() - self._start

    def cpu(self) -> dict[str, float]:
        """CPU seconds spent during the run by the parent, the pool workers, the pool server, the page server..."""
        out: dict[str, float] = {}
        for role, start, end in self._cpu.values():
            out[role] = out.get(role, 0.0) + end - start
        return out

    def quarters(self) -> list[tuple[float, float]]:
        """Peak (parent MiB, workers MiB) in each quarter of the run."""
        if not self.samples:
            return []
        end = self.samples[-1][0]
        out = []
        for q in range(4):
            part = [s for s in self.samples if q * end / 4 <= s[0] <= (q + 1) * end / 4] or self.samples
            out.append((max(s[1] for s in part) / 1024, max(s[2] for s in part) / 1024))
        return out


# ---------------------------------------------------------------- the bound

def bound_chunk(htmls: list[bytes], settings: Settings) -> int:
    """Extraction plus NER of some pages, nothing else (runs in a worker). Extraction is the pipeline's own
    (`flows.text.extract.extract`: trafilatura's two passes combined, the fallbacks and line rules), so the bound does
    the same extraction work as the run, and the ratio measures only what the pipeline adds around it."""
    from flows.text import entities, extract

    nlp = entities.load_pipeline(settings.entities.pipeline)
    texts = []
    for html in htmls:
        found = extract.extract(html, "http://127.0.0.1/bound", settings.extract)
        texts.append(found.text if found else "")
    entities.tag(nlp, texts, settings.entities.labels, settings.entities.max_chars)
    return len(htmls)


def warm(settings: Settings) -> None:
    from flows.text import entities

    entities.load_pipeline(settings.entities.pipeline)


def cpu_bound(pages: list[Path], settings: Settings, workers: int) -> tuple[float, float]:
    """Pages per second for extraction + NER alone, `workers` processes, chunks of 8 pages; and the workers' CPU
    seconds per page."""
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(warm, [settings] * workers))
        htmls = [p.read_bytes() for p in pages]
        chunks = [htmls[i:i + 8] for i in range(0, len(htmls), 8)]
        pids = list(pool._processes)  # the pool's own record of its workers
        cpu = sum(_cpu_seconds(p) for p in pids)
        start = time.perf_counter()
        done = sum(pool.map(bound_chunk, chunks, [settings] * len(chunks)))
        seconds = time.perf_counter() - start
        return done / seconds, (sum(_cpu_seconds(p) for p in pids) - cpu) / done


# ---------------------------------------------------------------- the run

@dataclass
class IngestResult:
    articles: int
    pages: int
    seconds: float
    rate: float
    bound_rate: float
    bound_pages: int
    memory: list[tuple[float, float]]
    summary: dict[str, Any]
    warehouse_mib: float
    bounds: tuple[float, float]  # the bound measured before and after the run (pages/s)
    cpu: dict[str, float]  # CPU seconds during the run, by process role (parent, pool workers, page server ...)
    bound_cpu_per_page: float  # the bound's workers' CPU seconds per page (mean of before and after)
    workers_waiting: float  # share of samples in which a pool worker was asleep, waiting for work


def run(*, variants: int, feeds: int, hosts: int = 20, bound_variants: int = 2, warm: bool = False
        ) -> IngestResult:
    """One ingest of `variants` x 88 pages in `feeds` feeds spread over `hosts` loopback hosts, politeness on.

    `warm`: the run uses a warm pool started beforehand, as a run started by `newsflow serve` does.
    """
    from flows.run import workers
    from flows.run.ingest import ingest

    with tempfile.TemporaryDirectory(prefix="newsflow-bench-") as tmp_name:
        tmp = Path(tmp_name)
        s = site.build(tmp / "site", variants=variants, feeds=feeds)
        with site.Server(s.root, hosts=hosts) as server:
            config = write_config(tmp, server.bases, s.feeds, polite=True)
            settings = load_settings(config, env={})
            # The bound before and after the run, averaged: on a shared machine the load drifts over minutes.
            sample = sorted((s.root / "pages").glob("p*.html"))[: bound_variants * (s.pages // variants)]
            before, cpu_before = cpu_bound(sample, settings, settings.worker_count())
            pool = workers.WarmPool(settings) if warm else None
            os.environ.update(pool.env() if pool else {})
            try:
                with MemorySampler() as mem:
                    start = time.perf_counter()
                    summary = ingest(config=str(config))
                    seconds = time.perf_counter() - start
            finally:
                for name in (workers.WARM_POOL_ENV, workers.WARM_POOL_KEY_ENV):
                    os.environ.pop(name, None)
                if pool:
                    pool.close()
        after, cpu_after = cpu_bound(sample, settings, settings.worker_count())
        bound = (before + after) / 2
        size = sum(p.stat().st_size for p in tmp.glob("wh.duckdb*")) / 2**20
    articles = summary.get("articles_new", 0)
    return IngestResult(articles, s.pages, seconds, s.pages / seconds, bound, len(sample), mem.quarters(),
                        summary, size, (before, after), mem.cpu(),
                        (cpu_before + cpu_after) / 2, mem.waiting[0] / max(mem.waiting[1], 1))
