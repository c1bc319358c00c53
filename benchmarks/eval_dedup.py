"""Dedup precision and recall: the labelled variants in tests/data/dedup and, as real negatives, every pair of
distinct fundus articles. Thresholds are swept to show where the configured ones sit on the curve."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from benchmarks.corpora import fundus_pages
from benchmarks.machine import table
from flows import dedup
from flows.settings import PROJECT_ROOT, DedupSettings

DATA = PROJECT_ROOT / "tests" / "data" / "dedup"


@dataclass(frozen=True)
class Pair:
    kind: str
    duplicate: bool
    exact: bool
    found: bool  # the LSH buckets or shingle samples make it a candidate, as in the warehouse lookup
    jaccard: float
    containment: float
    small: bool  # under min_shingles: only exact matching applies


def measure(a: dedup.Signature, b: dedup.Signature, settings: DedupSettings, kind: str, duplicate: bool) -> Pair:
    shared = np.intersect1d(a.shingles, b.shingles, assume_unique=True).size
    union = a.size + b.size - shared
    index = dedup.BatchIndex()
    index.add(0, a)
    return Pair(kind, duplicate, a.text_hash == b.text_hash and a.size > 0, bool(index.candidates(b, settings)),
                shared / union if union else 0.0, shared / min(a.size, b.size) if min(a.size, b.size) else 0.0,
                min(a.size, b.size) < settings.min_shingles)


def predicted(p: Pair, jaccard: float, containment: float) -> bool:
    if p.exact:
        return True
    return p.found and not p.small and (p.jaccard >= jaccard or p.containment >= containment)


def labelled_pairs(settings: DedupSettings, data: Path = DATA) -> list[Pair]:
    labels = json.loads((data / "labels.json").read_text())["pairs"]
    sigs: dict[str, dedup.Signature] = {}

    def sig(name: str) -> dedup.Signature:
        if name not in sigs:
            sigs[name] = dedup.signature((data / name).read_text(), settings)
        return sigs[name]

    return [measure(sig(p["a"]), sig(p["b"]), settings, p["kind"], p["duplicate"]) for p in labels]


def fundus_pairs(settings: DedupSettings) -> list[Pair]:
    """Every pair of fundus articles: the same URL crawled twice is the same story (real re-publication with
    edits), any other pair is two different stories, so a match there is a false positive."""
    pages = list(fundus_pages())
    sigs = [dedup.signature(p.body, settings) for p in pages]
    out = []
    for (pa, a), (pb, b) in combinations(zip(pages, sigs, strict=True), 2):
        same = pa.url.split("?")[0] == pb.url.split("?")[0]
        out.append(measure(a, b, settings, "fundus_same_url" if same else "fundus_distinct", same))
    return out


def pr(pairs: list[Pair], jaccard: float, containment: float) -> tuple[float, float, int, int]:
    tp = sum(1 for p in pairs if p.duplicate and predicted(p, jaccard, containment))
    fp = sum(1 for p in pairs if not p.duplicate and predicted(p, jaccard, containment))
    pos = sum(1 for p in pairs if p.duplicate)
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / pos if pos else 0.0), tp, fp


def section() -> str:
    settings = DedupSettings()
    labelled = labelled_pairs(settings)
    real = fundus_pairs(settings)
    negatives = [p for p in real if not p.duplicate]
    allpairs = labelled + real
    out = "## Dedup precision and recall\n\n"
    out += (f"{sum(p.duplicate for p in labelled)} labelled duplicate pairs and "
            f"{sum(not p.duplicate for p in labelled)} labelled non-duplicates (tests/data/dedup), plus "
            f"{len(real)} pairs of fundus articles ({sum(p.duplicate for p in real)} the same URL crawled on two "
            "dates, a real re-publication; the rest different stories, real-world negatives). A pair counts as found "
            "only when the LSH buckets or shingle samples make it a candidate, as in the warehouse lookup. "
            f"Configured: Jaccard >= {settings.jaccard_threshold} or containment >= "
            f"{settings.containment_threshold}.\n\n")
    out += "### By kind, configured thresholds\n\n"
    kinds: dict[str, list[Pair]] = defaultdict(list)
    for p in allpairs:
        kinds[p.kind].append(p)
    rows = []
    for kind, ps in sorted(kinds.items()):
        hit = sum(predicted(p, settings.jaccard_threshold, settings.containment_threshold) for p in ps)
        rows.append([kind, "yes" if ps[0].duplicate else "no", len(ps), hit,
                     f"{min(p.jaccard for p in ps):.2f}-{max(p.jaccard for p in ps):.2f}",
                     f"{min(p.containment for p in ps):.2f}-{max(p.containment for p in ps):.2f}"])
    out += table(["kind", "duplicate", "pairs", "flagged", "Jaccard range", "containment range"], rows)
    out += "\n### Threshold curve (all pairs)\n\n"
    rows = []
    for c in (0.5, 0.6, 0.7, 0.8, 0.9, 1.01):
        for j in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
            p, r, tp, fp = pr(allpairs, j, c)
            mark = " (configured)" if (j, c) == (settings.jaccard_threshold, settings.containment_threshold) else ""
            rows.append([f"{j}{mark}", "off" if c > 1 else c, round(p, 3), round(r, 3), tp, fp])
    out += table(["Jaccard >=", "containment >=", "precision", "recall", "TP", "FP"], rows)
    misses = [p for p in labelled if p.duplicate != predicted(p, settings.jaccard_threshold,
                                                               settings.containment_threshold)]
    if misses:
        out += "\nMisclassified at the configured thresholds:\n\n"
        out += table(["kind", "duplicate", "candidate found", "Jaccard", "containment"],
                     [[p.kind, p.duplicate, p.found, round(p.jaccard, 3), round(p.containment, 3)] for p in misses])
    near_fp = sorted((p for p in negatives), key=lambda p: -max(p.jaccard, p.containment))[:3]
    out += ("\nClosest distinct fundus pairs (Jaccard / containment): "
            + ", ".join(f"{p.jaccard:.3f} / {p.containment:.3f}" for p in near_fp) + "\n")
    return out
