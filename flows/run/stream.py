"""The article stream: download, extraction, NER and loading of successive batches overlap, so no core waits.

The run's entries are first interleaved across hosts (round robin, deterministic), so every batch mixes outlets
and downloads at the politeness rate of many hosts at once rather than one. A download thread fetches the pages
batch by batch and hands them to the process pool in small extraction chunks as they arrive. The calling thread
takes the batches in order: it pre-checks a batch against the warehouse (and against the batch before it, which
may not be loaded yet) once its extraction is done, submits NER for the documents that are not copies in chunks
of `NER_CHUNK`, and yields the batch when it is tagged, while the pool works on the next ones. The caller stages
and loads what it receives (one writer, one transaction per batch). At most `window` batches are in flight, so
memory stays flat however long the run.

No Prefect here: the run mode (flows/run/modes.py) stores each yielded batch with one task.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from flows.core.records import Document
from flows.core.settings import Settings
from flows.core.urls import interleave_hosts
from flows.feeds.parse import FeedEntry
from flows.run.documents import apply_tags, build_docs, plan_tagging, tag_texts
from flows.run.pages import download
from flows.warehouse.store import COPY_REASON, precheck
from flows.web.fetch import FetchResult, make_client
from flows.web.politeness import HostGate

# Small chunks keep both workers busy to the end of a batch; each call still amortises its pickling.
EXTRACT_CHUNK = 4


@dataclass
class Ready:
    """One batch, downloaded, extracted, pre-checked and tagged: what the caller stages and loads."""

    entries: list[FeedEntry]
    docs: list[Document]
    pages: list[dict[str, Any]]  # `page_fetches` rows, one per entry
    fetched: int  # pages that came back OK


@dataclass
class _Batch:
    entries: list[FeedEntry]
    extracting: list[Future[Any]] = field(default_factory=list)
    submitted: threading.Event = field(default_factory=threading.Event)
    fetched: int = 0
    docs: list[Document] = field(default_factory=list)
    pages: list[dict[str, Any]] = field(default_factory=list)
    tagging: list[tuple[list[tuple[Document, str]], Future[Any]]] = field(default_factory=list)


def articles(settings: Settings, pool: Executor, entries: list[FeedEntry], *, batch_size: int | None = None,
             window: int = 3, gate: HostGate | None = None, progress: Callable[[str, int], None] | None = None,
             read_only: bool = False) -> Iterator[Ready]:
    """Process `entries` in batches of `batch_size`, yielding each batch in order once it is tagged.

    Batches are cut from the entries interleaved across hosts (`interleave_hosts`), so a run over a few outlets
    does not download one host at a time while the cores wait; the warehouse does not depend on the order. Pass
    the run's `gate` so feed and page requests to one host share its politeness bound. `progress(event, n)`
    is told of pages "downloaded", entries "extracted" and documents "tagged" as they finish, from any thread.
    `read_only`: the pre-check reads the warehouse as a stage-only run does (store.precheck).
    """
    size = batch_size or settings.pipeline.batch_size
    entries = interleave_hosts(entries)
    batches = [_Batch(entries[i:i + size]) for i in range(0, len(entries), size)]
    if not batches:
        return
    run = _Stream(settings, pool, batches, window, gate, progress or (lambda _event, _n: None), read_only)
    thread = threading.Thread(target=run.download_all, name="newsflow-download", daemon=True)
    thread.start()
    try:
        run.extracted(batches[0], [])
        for k, batch in enumerate(batches):
            if k + 1 < len(batches):
                run.extracted(batches[k + 1], batch.docs)
            for chunk, future in batch.tagging:
                apply_tags(chunk, future.result())
            yield Ready(batch.entries, batch.docs, batch.pages, batch.fetched)
            batches[k] = _Batch([])  # the caller has stored it: let it go
            run.slots.release()
    finally:
        run.stop.set()
        for _ in batches:
            run.slots.release()
        thread.join()


class _Stream:
    """One call of `articles`: the download thread's loop and the caller's steps, sharing the batches."""

    def __init__(self, settings: Settings, pool: Executor, batches: list[_Batch], window: int,
                 gate: HostGate | None, tell: Callable[[str, int], None], read_only: bool) -> None:
        self.settings, self.pool, self.batches, self.gate, self.tell = settings, pool, batches, gate, tell
        self.read_only = read_only
        self.slots = threading.Semaphore(window)  # batches in flight
        self.stop = threading.Event()
        self.failure: list[BaseException] = []

    def counted(self, future: Future[Any], event: str, n: int) -> Future[Any]:
        future.add_done_callback(lambda _f: self.tell(event, n))
        return future

    def download_all(self) -> None:
        """The download thread: fetch each batch's pages, handing them to the pool in extraction chunks."""
        settings, pool = self.settings, self.pool
        gate = self.gate or HostGate.for_settings(settings.fetch)
        try:
            with make_client(settings.fetch) as client:
                for batch in self.batches:
                    self.slots.acquire()
                    if self.stop.is_set():
                        return
                    chunk: list[tuple[FeedEntry, FetchResult | None]] = []
                    for entry, result in download(settings, batch.entries, client, gate=gate):
                        batch.fetched += result is not None and result.ok
                        chunk.append((entry, result))
                        self.tell("downloaded", 1)
                        if len(chunk) == EXTRACT_CHUNK:
                            batch.extracting.append(self.counted(pool.submit(build_docs, chunk, settings),
                                                                 "extracted", len(chunk)))
                            chunk = []
                        if self.stop.is_set():
                            return
                    if chunk:
                        batch.extracting.append(self.counted(pool.submit(build_docs, chunk, settings),
                                                             "extracted", len(chunk)))
                    batch.submitted.set()
        except BaseException as exc:  # re-raised in the caller's thread
            self.failure.append(exc)
        finally:
            for batch in self.batches:  # wake a caller waiting on a batch that will never come
                batch.submitted.set()

    def extracted(self, batch: _Batch, before: list[Document]) -> None:
        """Once `batch` is extracted: pre-check it (`before`: the batch before it) and submit NER for the
        documents that are not copies."""
        settings = self.settings
        batch.submitted.wait()
        if self.failure:
            raise self.failure[0]
        for future in batch.extracting:
            for doc, page in future.result():
                batch.pages.append(page)
                if doc is not None:
                    batch.docs.append(doc)
        batch.extracting.clear()  # drop the page bodies held by the futures' arguments
        copies = precheck(settings, batch.docs, before=before, read_only=self.read_only)
        for doc, copy in zip(batch.docs, copies, strict=True):
            if copy:
                doc.ner_skip_reason = COPY_REASON
        for chunk in plan_tagging([d for d, copy in zip(batch.docs, copies, strict=True) if not copy], settings):
            batch.tagging.append((chunk, self.counted(
                self.pool.submit(tag_texts, [(d.text, name) for d, name in chunk], settings), "tagged", len(chunk))))
