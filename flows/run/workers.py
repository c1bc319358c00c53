"""The process pool that runs extraction, signatures and NER, one worker per core.

A run makes its own pool (spawning the workers and loading spaCy in them costs seconds of both cores), unless a
warm pool is running: `newsflow serve` starts one (`WarmPool`) that outlives the flow runs it starts, and passes its
address to them in `NEWSFLOW_WARM_POOL` (with the key in `NEWSFLOW_WARM_POOL_KEY`); `make_pool` then hands out a
client of it. The warm pool's server listens on a Unix socket in a private temp dir, with a random key.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from multiprocessing.managers import BaseManager
from typing import Any

from flows.core.settings import Settings
from flows.text import entities


class InlineExecutor(Executor):
    """Runs submitted work in the calling process (workers = 1, or tiny batches)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[Any]:
        return iter([fn(*args) for args in zip(*iterables, strict=True)])


WARM_POOL_ENV = "NEWSFLOW_WARM_POOL"
WARM_POOL_KEY_ENV = "NEWSFLOW_WARM_POOL_KEY"
logger = logging.getLogger("newsflow.workers")


def make_pool(settings: Settings, *, warm: str | None = None, key: str | None = None) -> Executor:
    """The run's executor: a client of the warm pool at `warm` (a `WarmPool` address) when it answers, else a
    new process pool (or inline work when there is one core)."""
    n = settings.worker_count()
    if n <= 1:
        return InlineExecutor()
    if warm and key:
        try:
            return RemoteExecutor(warm, key, n)
        except (OSError, EOFError) as exc:  # the server is gone (serve stopped): this run spawns its own
            logger.warning("warm pool at %s unreachable (%s); starting a pool for this run", warm, exc)
    # spawn, not fork: the parent runs threads (HTTP, Prefect's API client) that fork would copy mid-state.
    # No max_tasks_per_child: on Python 3.11 a pool that replaces its workers can hang once they have all exited
    # (seen here: a 2,112-article benchmark stopped with no workers left).
    # exit_with_parent: a run killed (SIGKILL, OOM) or ended at once by SIGTERM (flows/cli.py) takes its workers
    # along; without it they lived on for minutes, half a gigabyte of spaCy models.
    pool = ProcessPoolExecutor(n, mp_context=get_context("spawn"), initializer=exit_with_parent,
                               initargs=(os.getpid(),))
    # Start the workers and load spaCy now, while the parent fetches the feeds.
    for _ in range(n):
        pool.submit(warm_up, settings)
    return pool


class RunPool:
    """A run's process pool, made when first needed: a client of the warm pool `newsflow serve` keeps for the flow
    runs it starts (`NEWSFLOW_WARM_POOL`), else a pool of the run's own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: Executor | None = None

    def get(self) -> Executor:
        if self.pool is None:
            self.pool = make_pool(self.settings, warm=os.environ.get(WARM_POOL_ENV),
                                  key=os.environ.get(WARM_POOL_KEY_ENV))
        return self.pool

    def describe(self) -> str:
        pool = self.get()
        if isinstance(pool, RemoteExecutor):
            return "the warm pool of newsflow serve"
        return f"{type(pool).__name__} of this run"

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def warm_up(settings: Settings) -> None:
    """Load the NER pipeline in a worker (cached per process)."""
    entities.load_pipeline(settings.entities.pipeline)


@contextmanager
def threads(n: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool for a block of I/O calls. Left normally, it waits for them; left by an exception (SIGTERM
    or Ctrl-C in the main thread), it drops the queued calls and does not wait for the running ones, which may
    be blocked on a slow server for a whole timeout: the interrupt reaches Prefect's engine and the CLI now."""
    pool = ThreadPoolExecutor(n)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------- the warm pool kept by `newsflow serve`

_pool: ProcessPoolExecutor | None = None  # the warm pool's workers, in its server process


class _Pool:
    """What the warm pool's server exposes: run one call in a worker, and list the workers."""

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        assert _pool is not None
        return _pool.submit(fn, *args).result()

    def pids(self) -> list[int]:
        assert _pool is not None
        return sorted(_pool._processes)  # the pool's own record of its worker processes

    def close(self) -> None:
        """Stop the workers (the server itself is stopped by its manager; its workers would outlive it)."""
        global _pool
        if _pool is not None:
            _pool.shutdown(cancel_futures=True)
            _pool = None


def _serve_pool(workers: int, settings: Settings) -> _Pool:
    """The server process's one pool, started and warmed on first use."""
    global _pool
    if _pool is None:
        exit_with_parent(os.getppid())  # `newsflow serve` gone, even by SIGKILL: the server goes too
        _pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=exit_with_parent,
                                    initargs=(os.getpid(),))
        for future in [_pool.submit(warm_up, settings) for _ in range(workers)]:
            future.result()
    return _Pool()


def exit_with_parent(parent: int) -> None:
    """End this process once `parent` has gone: a pool worker waiting on its queue (or busy in spaCy) would
    otherwise live on. Polled, not PR_SET_PDEATHSIG: that signal follows the parent's *thread* that started the
    worker, and a pool may start its workers from a thread that ends long before the parent does."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)  # polling: the stdlib has no parent-death signal
        os._exit(0)

    threading.Thread(target=watch, name="newsflow-parent-watch", daemon=True).start()


class _Manager(BaseManager):
    pass


_Manager.register("pool", callable=_serve_pool)


class WarmPool:
    """A process pool in its own server process, warm (spaCy loaded) and kept across flow runs.

    `env()` is what a flow run needs to use it (see `make_pool`); `close()` stops the server and its workers.
    """

    def __init__(self, settings: Settings) -> None:
        self.key = secrets.token_hex(16)
        self.workers = settings.worker_count()
        self._manager = _Manager(authkey=self.key.encode(), ctx=get_context("spawn"))
        self._manager.start()
        self.address = str(self._manager.address)
        self._manager.pool(self.workers, settings)  # spawn the workers and load spaCy now

    def env(self) -> dict[str, str]:
        return {WARM_POOL_ENV: self.address, WARM_POOL_KEY_ENV: self.key}

    def pids(self) -> list[int]:
        return self._manager.pool(self.workers, None).pids()

    def close(self) -> None:
        try:
            self._manager.pool(self.workers, None).close()
        finally:
            self._manager.shutdown()


class RemoteExecutor(Executor):
    """A client of a `WarmPool`: each submitted call runs in one of its workers. `shutdown` leaves them warm."""

    def __init__(self, address: str, key: str, workers: int) -> None:
        manager = _Manager(address=address, authkey=key.encode())
        manager.connect()
        self._pool = manager.pool(workers, None)
        # Twice the workers in flight, so a worker that finishes finds the next call already queued.
        self._threads = ThreadPoolExecutor(2 * workers, thread_name_prefix="newsflow-warm-pool")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if kwargs:
            raise TypeError("the warm pool takes positional arguments only")
        return self._threads.submit(self._pool.run, fn, args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._threads.shutdown(wait, cancel_futures=cancel_futures)
