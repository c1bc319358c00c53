"""The bag-of-words metric of the corpora README, and the page split of the fundus pages the previous extraction
rules were written on. The extraction evaluation itself is by publisher: benchmarks/eval_grouped.py."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

_TOKEN = re.compile(r"\w+")


def page_scores(extracted: str, expected: str) -> tuple[float | None, float, float]:
    """(precision or None for empty output, recall, page F1) of one page, on bags of words."""
    got, want = Counter(_TOKEN.findall(extracted)), Counter(_TOKEN.findall(expected))
    matched = sum((got & want).values())
    n_got, n_want = sum(got.values()), sum(want.values())
    p = matched / n_got if n_got else None
    r = matched / n_want if n_want else 0.0
    f = 2 * p * r / (p + r) if p and r else 0.0
    return p, r, f


def split_of(page_id: str) -> str:
    """The page split the rules of benchmarks/extract_previous.py were chosen on ("tuned", by a hash of the id)."""
    return "untuned" if hashlib.blake2b(page_id.encode(), digest_size=4).digest()[0] % 2 == 0 else "tuned"
