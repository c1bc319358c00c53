"""Article quality flags on real pages: how many of the fundus pages are flagged paywalled, teaser or consent
page, by which signal, and a reproducible sample of each flag to check by hand (docs/quality.md).

    NEWSFLOW_CORPORA=/path/to/corpora python -m benchmarks.eval_quality [--sample 5] [--seed 22]

The pages are read where they lie (benchmarks/corpora.py), never copied. Each is extracted as the pipeline does
(flows/text/extract.py, default settings) and assessed with flows/text/quality.py.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

from benchmarks.corpora import fundus_pages
from flows.core.sections import ExtractSettings
from flows.text import extract, quality

FLAGS = ("paywalled", "teaser", "consent page")


def assess_corpus() -> list[tuple[str, str, quality.Quality, int]]:
    """(page id, url, flags, words extracted) for every fundus page."""
    out = []
    for page in fundus_pages():
        found = extract.extract(page.html, page.url, ExtractSettings())
        text = found.text if found else ""
        out.append((page.id, page.url, quality.assess(page.html, text, found.title if found else None),
                    quality.words(text)))
    return out


def _has(flag: str, q: quality.Quality) -> bool:
    return {"paywalled": q.access == quality.PAYWALLED, "teaser": q.is_teaser,
            "consent page": q.is_consent_page}[flag]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=5, help="flagged pages listed per flag (default 5)")
    parser.add_argument("--seed", type=int, default=22, help="seed of the sample (default 22)")
    args = parser.parse_args()
    rows = assess_corpus()
    print(f"{len(rows)} fundus pages")
    signals: Counter[str] = Counter(s.split(":")[0] + (":" + s.split(":")[1] if s.startswith("schema") else "")
                                    for _, _, q, _ in rows for s in q.why.split(",") if s)
    for flag in FLAGS:
        flagged = [r for r in rows if _has(flag, r[2])]
        print(f"\n{flag}: {len(flagged)} of {len(rows)} ({100 * len(flagged) / len(rows):.1f}%)")
        for page_id, url, q, n in random.Random(args.seed).sample(flagged, min(args.sample, len(flagged))):
            print(f"  {page_id:40} {n:5} words  {q.why:40} {url}")
    print("\nsignals:", ", ".join(f"{k} {v}" for k, v in sorted(signals.items())))


if __name__ == "__main__":
    main()
