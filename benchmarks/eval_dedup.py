"""Dedup quality on the generated labelled set (benchmarks/dedupset.py), measured through the real warehouse.

Each split is loaded, in arrival order and batches of 64, into a fresh DuckDB warehouse with
`flows.warehouse.writer.load_batch`; the clusters are read back from `articles` and `duplicates` (a copy's cluster
is the article it names). Reported: the adjusted Rand index against the true stories, recall and pair precision per
kind of copy, and how many hard negatives ended up in a cluster with another story. Thresholds are chosen on the
tuning split only; the held-out split is reported beside it.
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import comb
from pathlib import Path
from typing import Any

from benchmarks import dedupset
from benchmarks.dedupset import Doc
from benchmarks.machine import table
from flows.core.records import Document
from flows.core.sections import DedupSettings
from flows.core.settings import WarehouseSettings
from flows.run.documents import signature_fields
from flows.warehouse.database import connect, migrate
from flows.warehouse.staging import Batch
from flows.warehouse.writer import load_batch

BATCH = 64
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def staged_doc(doc: Doc, settings: DedupSettings) -> Document:
    """The staged-batch document the loader expects (as flows.run.documents.build_doc makes it): the one adapter."""
    return Document(url=doc.url, feed=doc.outlet, entry_guid=doc.url, title=doc.title, text=doc.text,
                    body_source="extracted", ner_skip_reason="not tagged in the evaluation",
                    # Arrival time as the feed's publication time: within a batch the loader judges documents
                    # by it (flows.warehouse.writer.decision_order), as it would a real feed's entries.
                    published_at=_EPOCH + timedelta(minutes=doc.order), published_source="feed",
                    **signature_fields(doc.text, settings))


def clusters(docs: list[Doc], settings: DedupSettings, folder: Path) -> dict[str, int]:
    """Load the documents in order into a new warehouse in `folder`; each URL's cluster (an article id)."""
    wh = WarehouseSettings(path=folder / "eval.duckdb")
    with connect(wh) as conn:
        migrate(conn)
        for n, start in enumerate(range(0, len(docs), BATCH)):
            batch = Batch(f"eval-{n:05d}", "eval")
            batch.add("docs", *[staged_doc(d, settings) for d in docs[start:start + BATCH]])
            load_batch(conn, batch, settings)
        found = dict(conn.execute("select url, article_id from articles").fetchall())
        found.update(conn.execute("select url, duplicate_of from duplicates").fetchall())
    return found


def ari(truth: list[str], predicted: list[Any]) -> float:
    """Adjusted Rand index (Hubert and Arabie) of two labellings of the same items."""
    n = len(truth)
    pairs = sum(comb(c, 2) for c in Counter(zip(truth, predicted, strict=True)).values())
    a = sum(comb(c, 2) for c in Counter(truth).values())
    b = sum(comb(c, 2) for c in Counter(predicted).values())
    expected = a * b / comb(n, 2) if n > 1 else 0.0
    top = (a + b) / 2
    return 1.0 if top == expected else (pairs - expected) / (top - expected)


@dataclass
class Result:
    split: str
    docs: int
    ari: float
    found: dict[str, tuple[int, int]]  # kind -> (copies in their original's cluster, copies)
    precision: dict[str, float]  # kind -> share of the kind's co-clustered pairs that are the same story
    negatives_merged: dict[str, tuple[int, int]]  # kind -> (merged with another story, negatives)


def score(docs: list[Doc], predicted: dict[str, int]) -> tuple[float, dict, dict, dict]:
    """ARI, per-kind recall and pair precision, and negatives merged, for one loaded split."""
    label = [predicted[d.url] for d in docs]
    members: dict[int, list[Doc]] = defaultdict(list)
    for d, c in zip(docs, label, strict=True):
        members[c].append(d)
    original = {d.story: predicted[d.url] for d in docs if d.kind == "original"}
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    same: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    merged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for d, c in zip(docs, label, strict=True):
        others = [o for o in members[c] if o.url != d.url]
        if d.kind.startswith("neg_"):
            merged[d.kind][0] += any(o.story != d.story for o in others)
            merged[d.kind][1] += 1
        elif d.kind != "original":
            found[d.kind][0] += c == original[d.story]
            found[d.kind][1] += 1
            same[d.kind][0] += sum(o.story == d.story for o in others)
            same[d.kind][1] += len(others)
    precision = {k: (s / t if t else 1.0) for k, (s, t) in same.items()}
    return (ari([d.story for d in docs], label), {k: tuple(v) for k, v in found.items()}, precision,
            {k: tuple(v) for k, v in merged.items()})


def evaluate(split: str, settings: DedupSettings, docs: list[Doc] | None = None) -> Result:
    docs = docs if docs is not None else dedupset.generate(split)
    with tempfile.TemporaryDirectory(prefix="newsflow-dedupeval-") as tmp:
        predicted = clusters(docs, settings, Path(tmp))
    a, found, precision, merged = score(docs, predicted)
    return Result(split, len(docs), a, found, precision, merged)


# The settings swept for the published curve, each against the configured ones.
CURVE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("partial containment >= 0.6 (before issue 22)", {"partial_containment_threshold": 0.6}),
    ("partial containment >= 0.5", {"partial_containment_threshold": 0.5}),
    ("partial containment >= 0.35", {"partial_containment_threshold": 0.35}),
    ("sentences of 8+ words signed", {"min_sentence_words": 8}),
    ("sentences of 11+ words signed", {"min_sentence_words": 11}),
    ("every word signed (no chrome rule)", {"min_sentence_words": 0}),
    ("containment >= 0.8", {"containment_threshold": 0.8}),
    ("summary criterion off", {"summary_max_words": 0}),
)


def _recall(r: Result, prefix: str) -> Any:
    """Recall over the kinds whose name starts with `prefix`, pooled."""
    hit = sum(h for k, (h, _) in r.found.items() if k.startswith(prefix))
    n = sum(n for k, (_, n) in r.found.items() if k.startswith(prefix))
    return round(hit / n, 3) if n else "-"


def _curve_cells(r: Result) -> list[Any]:
    return [round(r.ari, 4), sum(m for m, _ in r.negatives_merged.values()), _recall(r, "combined"),
            _recall(r, "rss_summary")]


def section() -> str:
    settings = DedupSettings()
    data = {split: dedupset.generate(split) for split in dedupset.SPLITS}
    results = {split: evaluate(split, settings, docs) for split, docs in data.items()}
    out = "## Dedup on the generated labelled set\n\n"
    stories = {s: len({d.base for d in docs if d.kind == "original"}) for s, docs in data.items()}
    out += (f"`benchmarks/dedupset.py`: {sum(stories.values())} base stories (fundus bodies in several languages, "
            "the demo stories and the seed), each with copies of every kind below; negatives are different "
            "stories about the same event, with the same people or sharing a long quote, and outlets' template "
            f"pages. Split by a hash of the story id: tuning {stories['tuning']} stories "
            f"({len(data['tuning'])} documents), held out {stories['heldout']} ({len(data['heldout'])}); "
            "thresholds were chosen on tuning only. Each split is loaded in arrival order (an original before "
            "its own copies, stories interleaved) through `flows.warehouse.writer.load_batch` into a fresh DuckDB "
            "warehouse, and the clusters are read from `articles` + `duplicates`. `combined` copies are abridged, "
            "copy-edited, re-headlined and in another outlet's chrome at once; `combined_<layout>` the same laid out "
            "anew (hard-wrapped at 40 or 70 characters, `<br>`-separated, one sentence per paragraph, one paragraph, "
            "a break every 2-6 words), the chrome too; `exact_relaid` is the original's body in one of those "
            "layouts.\n\n")
    out += (f"Configured: shingles of {settings.shingle_size} words over the text read by sentence whatever its "
            f"line breaks, sentences under {settings.min_sentence_words} words or without terminal punctuation "
            "(chrome) left out of the signature; a copy when containment >= "
            f"{settings.containment_threshold}, or with >= {settings.min_shared_shingles} shingles shared when "
            f"Jaccard >= {settings.jaccard_threshold} or containment >= "
            f"{settings.partial_containment_threshold}; or, for a text of at most {settings.summary_max_words} "
            f"words, when each of its sentences of {settings.min_sentence_words}+ words has containment >= "
            f"{settings.summary_sentence_threshold} in the longer text (a lone sentence: in its first "
            f"{settings.summary_lede_words} words) and the whole >= {settings.summary_containment_threshold}. "
            "Documents carry their arrival time as the feed's publication time, which orders the loader's "
            "decisions within a batch.\n\n")
    out += table(["split", "documents", "ARI", "hard negatives merged"],
                 [[r.split, r.docs, round(r.ari, 4), sum(m for m, _ in r.negatives_merged.values())]
                  for r in results.values()])
    out += "\n### By kind of copy (found = in the same cluster as the original)\n\n"
    kinds = sorted({k for r in results.values() for k in r.found})
    rows = []
    for k in kinds:
        row: list[Any] = [k]
        for r in results.values():
            hit, n = r.found.get(k, (0, 0))
            row += [f"{hit}/{n}", round(hit / n, 3) if n else "-", round(r.precision.get(k, 1.0), 3)]
        rows.append(row)
    out += table(["kind", "tuning found", "recall", "pair precision", "held-out found", "recall", "pair precision"],
                 rows)
    out += "\n### Hard negatives merged with another story\n\n"
    negs = sorted({k for r in results.values() for k in r.negatives_merged})
    out += table(["kind", "tuning", "held out"],
                 [[k, *(f"{r.negatives_merged.get(k, (0, 0))[0]}/{r.negatives_merged.get(k, (0, 0))[1]}"
                        for r in results.values())] for k in negs])
    out += ("\n### Threshold curve (ARI, hard negatives merged, recall of the combined kinds pooled and of RSS "
            "summaries, per split)\n\n")
    rows = [["configured", *(x for r in results.values() for x in _curve_cells(r))]]
    for label, update in CURVE:
        s = settings.model_copy(update=update)
        rows.append([label, *(x for split, docs in data.items() for x in _curve_cells(evaluate(split, s, docs)))])
    out += table(["settings", "tuning ARI", "merged", "combined", "summaries", "held-out ARI", "merged", "combined",
                  "summaries"], rows)
    return out
