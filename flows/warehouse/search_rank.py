"""BM25 over the segments' postings files (flows/warehouse/search_postings.py) with numpy: the plan of
flows/warehouse/search_plan.py (match terms, OR groups and exclusions; sum BM25 over the positive words; rank by
score, then article id), computed on dense arrays indexed by an article's number in its segment. No Prefect here.

It scores every matching article, as the SQL does: the same statistics (live articles and their total length per
language group from the head, each word's document frequency counted over the live postings of every segment),
the same formula in the same order of operations, so the results are those of the SQL plan (the sum of a few words'
weights may differ in its last bit, as the SQL's own order of summation is unspecified).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flows.warehouse.search_postings import Postings

K1, B = 1.2, 0.75
K1_PLUS_1 = 2.2  # the SQL's `1.2 + 1` is a decimal sum, exactly 2.2, then a double: not 1.2 + 1.0 in doubles


@dataclass(frozen=True)
class Term:
    """One term of the query in one language group: all its keys must be in an article (a phrase's words; its
    order is checked on the text later)."""
    idx: str
    t: int
    g: int
    neg: bool
    phrase: bool
    raw: str
    keys: tuple[int, ...]


def terms(rows: list[dict[str, object]]) -> list[Term]:
    """The query's terms per language group from the stemmed rows (t, g, neg, phrase, raw, idx, h)."""
    out: dict[tuple[str, int], dict[str, object]] = {}
    for r in rows:
        k = (str(r["idx"]), int(r["t"]))  # type: ignore[call-overload]
        term = out.setdefault(k, {**r, "keys": []})
        if int(r["h"]) not in term["keys"]:  # type: ignore[operator, call-overload]
            term["keys"].append(int(r["h"]))  # type: ignore[union-attr, call-overload]
    return [Term(k[0], k[1], int(v["g"]), bool(v["neg"]), bool(v["phrase"]), str(v["raw"]),  # type: ignore
                 tuple(v["keys"])) for k, v in out.items()]  # type: ignore[arg-type]


@dataclass
class Segment:
    """A segment as a query sees it: its postings file and its tombstoned articles (by number; None for none)."""
    post: Postings
    dead: np.ndarray | None = None

    def live(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        docs, tfs = self.post.postings(key)
        if self.dead is not None and len(docs):
            keep = ~self.dead[docs]
            docs, tfs = docs[keep], tfs[keep]
        return docs, tfs


@dataclass
class Scored:
    """The candidates of one segment: article numbers (ascending), their scores, and per term which articles of
    the segment it matched (for the phrase check)."""
    seg: int
    docs: np.ndarray
    scores: np.ndarray
    matched: dict[Term, np.ndarray] = field(default_factory=dict)


def score(segments: list[Segment], query: list[Term], groups: int, stats: dict[str, tuple[int, int]],
          allowed: list[np.ndarray | None]) -> list[Scored]:
    """The articles of each segment meeting the query (every positive group, no excluded plain term; phrases as if
    they held), scored; `allowed[s]`: a mask of the articles of segment s a filter keeps (None: all)."""
    keys = sorted({k for t in query for k in t.keys})
    lists = [{k: seg.live(k) for k in keys} for seg in segments]
    df = {k: sum(len(ls[k][0]) for ls in lists) for k in keys}
    weights: dict[tuple[str, int], tuple[float, float]] = {}
    for t in query:
        if t.neg or t.idx not in stats or not stats[t.idx][0]:
            continue
        n, total = stats[t.idx]
        for k in t.keys:
            weights[(t.idx, k)] = (float(np.log10(((n - df[k] + 0.5) / (df[k] + 0.5)) + 1)), total / n)
    positive = sorted({t.g for t in query if not t.neg})
    phrases = any(t.phrase for t in query)
    out = []
    for s, (seg, ls) in enumerate(zip(segments, lists, strict=True)):
        size = len(seg.post.ids)
        length, keep_s = seg.post.length, allowed[s]
        universe = _universe(query, ls, size) if not phrases else None
        if universe is not None:  # few postings: the same arithmetic over the articles they name only
            ls = {k: _local(universe, d, tf) for k, (d, tf) in ls.items()}
            size, length = len(universe), length[universe]
            keep_s = keep_s[universe] if keep_s is not None else None
        matched: dict[Term, np.ndarray] = {}
        for t in query:
            if len(t.keys) == 1:
                mask = np.zeros(size, bool)
                mask[ls[t.keys[0]][0]] = True
            else:
                count = np.zeros(size, np.uint8)
                for k in t.keys:
                    count[ls[k][0]] += 1
                mask = count == len(t.keys)
            matched[t] = mask
        cand = np.ones(size, bool) if len(positive) == groups and groups else np.zeros(size, bool)
        for g in positive:
            any_of = np.zeros(size, bool)
            for t in query:
                if t.g == g and not t.neg:
                    any_of |= matched[t]
            cand &= any_of
        for t in query:
            if t.neg and not t.phrase:
                cand &= ~matched[t]
        if keep_s is not None:
            cand &= keep_s
        docs = np.flatnonzero(cand)
        total = np.zeros(size, np.float64)
        for (_, k), (idf, avg) in weights.items():
            d, tf = ls[k]
            keep = cand[d]
            d, tf = d[keep], tf[keep].astype(np.float64)
            dl = length[d].astype(np.float64)
            # The SQL's expression, operation for operation: idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg)).
            total[d] += idf * tf * K1_PLUS_1 / (tf + K1 * ((1 - B) + (B * dl) / avg))
        if universe is not None:
            out.append(Scored(s, universe[docs].astype(np.int64), total[docs], {}))
        else:
            out.append(Scored(s, docs, total[docs], matched))
    return out


def _universe(query: list[Term], ls: dict[int, tuple[np.ndarray, np.ndarray]], size: int) -> np.ndarray | None:
    """The articles of a segment named by the postings of the query's positive words (sorted), when they are few
    against the segment (a rare word, a name): scoring then works on arrays of their size, not the segment's (a
    dense mask per term and segment cost ~20 ms a query at a million articles). None: score densely."""
    lists = [ls[k][0] for k in sorted({k for t in query if not t.neg for k in t.keys})]
    if sum(len(d) for d in lists) * 8 >= size:
        return None
    return np.unique(np.concatenate(lists)) if lists else np.zeros(0, np.uint32)


def _local(universe: np.ndarray, d: np.ndarray, tf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Postings (article numbers ascending, tf) as positions in `universe`, those of articles outside it left out
    (an excluded word's): the order is kept, so the sums run as the dense ones do."""
    i = np.searchsorted(universe, d)
    inside = i < len(universe)
    inside[inside] = universe[i[inside]] == d[inside]
    return i[inside], tf[inside]


class Ranking:
    """Every candidate of every segment, in order of score (descending), then article id; `best(k)` gives the
    first k as (segment, article number, article id, score) arrays without sorting the rest."""

    def __init__(self, scored: list[Scored], segments: list[Segment]) -> None:
        self.seg = np.concatenate([np.full(len(x.docs), x.seg, np.int32) for x in scored]) if scored \
            else np.zeros(0, np.int32)
        self.dn = np.concatenate([x.docs for x in scored]) if scored else np.zeros(0, np.int64)
        self.ids = np.concatenate([segments[x.seg].post.ids[x.docs] for x in scored]) if scored \
            else np.zeros(0, np.int64)
        self.scores = np.concatenate([x.scores for x in scored]) if scored else np.zeros(0, np.float64)

    def __len__(self) -> int:
        return len(self.scores)

    def best(self, k: int) -> np.ndarray:
        """Positions of the best k candidates, in order."""
        n = len(self.scores)
        if k >= n:
            sel = np.arange(n)
        else:  # the k-th score, and every candidate at least as good (ties at the cut sorted by id below)
            cut = self.scores[np.argpartition(-self.scores, k - 1)[k - 1]]
            sel = np.flatnonzero(self.scores >= cut)
        order = np.lexsort((self.ids[sel], -self.scores[sel]))
        return sel[order][:k]
