"""Counts of one run, for its `runs` row and the run summary artifact."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class LoadCounts(Protocol):
    """What a run counts of one load (flows/warehouse/writer.py LoadResult has these), so the counts need no
    import of the writer: the feed stage that counts its feeds does not pull in the warehouse."""

    new: int
    exact: int
    near: int
    mentions: int


@dataclass
class RunStats:
    """Counts for the `runs` row and the run summary artifact."""

    feeds_total: int = 0
    feeds_ok: int = 0
    feeds_not_modified: int = 0
    feeds_failed: int = 0
    feeds_skipped: int = 0
    entries_seen: int = 0
    entries_new: int = 0
    pages_fetched: int = 0
    pages_failed: int = 0
    articles_new: int = 0
    fallbacks: int = 0
    duplicates_exact: int = 0
    duplicates_near: int = 0
    entity_mentions: int = 0
    batches_staged: int = 0

    def add_load(self, result: LoadCounts) -> None:
        self.articles_new += result.new
        self.duplicates_exact += result.exact
        self.duplicates_near += result.near
        self.entity_mentions += result.mentions

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}
