"""The ingest run's progress: the reporter the CLI installed (flows/run/progress.py) and the run's Prefect artifact."""

from __future__ import annotations

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from flows.run import progress

_EVENTS = {"feed": "feeds", "downloaded": "pages", "extracted": "extracted", "tagged": "tagged"}


class IngestProgress:
    """An ingest run's progress: shown by the reporter the CLI installed (flows/run/progress.py) and kept in the run's
    `ingest-progress` artifact (feeds 0-10 %, articles stored 10-95 %, checks and snapshot the rest).

    Counters move from any thread; the artifact is written from the flow's thread only (`checkpoint`), once per
    stage or batch, so the Prefect API sees a handful of updates, not one per article.
    """

    def __init__(self, reporter: progress.Reporter, dry_run: bool) -> None:
        self.reporter = reporter
        self.dry_run = dry_run
        self.total = 0
        self.loaded = 0  # this run's own count: the reporter may be shared by several runs in one process
        self.waiting: dict[str, int] = {}
        self.shown = 0.0
        self.artifact_id = create_progress_artifact(0.0, key="ingest-progress", description="ingest: feeds, "
                                                    "then articles downloaded, extracted, tagged and loaded")

    def event(self, name: str, n: int) -> None:
        """The stages' callback (collect.fetch_feeds, stream.articles)."""
        self.reporter.advance(_EVENTS.get(name, name), n)

    def feeds(self, n: int) -> None:
        self.reporter.add("feeds", "feeds fetched", n)

    def articles(self, n: int) -> None:
        """The feeds are done and `n` new entries are to be processed."""
        r, self.total = self.reporter, n
        r.add("pages", "pages downloaded", n)
        r.add("extracted", "articles extracted", n)
        r.add("tagged", "articles tagged")  # copies of stored articles skip NER: no total known up front
        r.add("loaded", "articles processed (dry run)" if self.dry_run else "articles loaded", n, main=True)
        r.gauge("waiting", "batches waiting to load", 0)
        if n:  # with nothing new the run is all but done: the artifact goes to 100 at its end, one update
            self.checkpoint(10.0)

    def queued(self, batch_id: str, n: int) -> None:
        self.waiting[batch_id] = n
        self.reporter.gauge("waiting", "batches waiting to load", len(self.waiting))

    def stored(self, batch_id: str) -> None:
        """A queued batch is loaded (or staged for the next run: it is safe either way)."""
        n = self.waiting.pop(batch_id, None)
        if n is not None:
            self.reporter.gauge("waiting", "batches waiting to load", len(self.waiting))
            self.reporter.advance("loaded", n)
            self.loaded += n

    def processed(self, n: int) -> None:
        """A dry-run batch is done (nothing to load)."""
        self.reporter.advance("loaded", n)
        self.loaded += n

    def checkpoint(self, percent: float | None = None) -> None:
        """Move the artifact to `percent`, or to where the loaded articles put it; never backwards."""
        if percent is None:
            if not self.total:
                return  # nothing to load: the end of the run moves it
            # Not the reporter's count: without a CLI every run in the process shares the silent default
            # reporter, whose counters add up across runs (a second run's bar passed 100 %).
            percent = 10.0 + 85.0 * min(1.0, self.loaded / self.total)
        if percent > self.shown:
            self.shown = percent
            update_progress_artifact(self.artifact_id, round(percent, 1))
