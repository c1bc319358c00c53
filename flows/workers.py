"""The process pool that runs extraction, signatures and NER, one worker per core."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from flows import entities
from flows.settings import Settings


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


def make_pool(settings: Settings) -> Executor:
    n = settings.worker_count()
    if n <= 1:
        return InlineExecutor()
    # spawn, not fork: the parent runs threads (HTTP, Prefect's API client) that fork would copy mid-state.
    # No max_tasks_per_child: on Python 3.11 a pool that replaces its workers can hang once they have all exited
    # (seen here: a 2,112-article benchmark stopped with no workers left).
    pool = ProcessPoolExecutor(n, mp_context=get_context("spawn"))
    # Start the workers and load spaCy now, while the parent fetches the feeds.
    for _ in range(n):
        pool.submit(warm_up, settings)
    return pool


def warm_up(settings: Settings) -> None:
    """Load the NER pipeline in a worker (cached per process)."""
    entities.load_pipeline(settings.entities.pipeline)


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
