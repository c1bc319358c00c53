"""Extraction quality on the fundus pages, with the bag-of-words metric of the corpora README."""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.corpora import Page, fundus_pages
from benchmarks.machine import table

if TYPE_CHECKING:
    from flows.core.settings import ExtractSettings

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


@dataclass
class Score:
    name: str
    pages: int
    f1: float
    precision: float
    recall: float
    empty: int
    under_half: int
    pages_per_s: float


def score(name: str, pages: list[Page], outputs: list[str], elapsed: float) -> tuple[Score, list[float]]:
    """F1 of the mean precision (non-empty outputs) and the mean recall (all pages), empties, pages under 0.5."""
    ps, rs, fs = [], [], []
    empty = 0
    for out, page in zip(outputs, pages, strict=True):
        p, r, f = page_scores(out, page.body)
        if p is None:
            empty += 1
        else:
            ps.append(p)
        rs.append(r)
        fs.append(f)
    mp = sum(ps) / len(ps) if ps else 0.0
    mr = sum(rs) / len(rs) if rs else 0.0
    f1 = 2 * mp * mr / (mp + mr) if mp + mr else 0.0
    return Score(name, len(pages), f1, mp, mr, empty, sum(1 for f in fs if f < 0.5),
                 len(pages) / elapsed if elapsed else 0.0), fs


def extractors() -> dict[str, Callable[[Page], str]]:
    """Reference trafilatura (the README's setting), newsflow's earlier settings and its extraction now."""
    import trafilatura

    from flows.core.settings import ExtractSettings
    from flows.text import extract

    settings = ExtractSettings()

    def reference(page: Page) -> str:
        return trafilatura.extract(page.html, url=page.url, include_comments=False) or ""

    def newsflow(page: Page) -> str:
        found = extract.extract(page.html, page.url, settings)
        return found.text if found else ""

    # Issue 10 part 5 before this round: favor_precision, the first nine line patterns, title overlap 0.8, tail 5.
    previous_settings = settings.model_copy(update={
        "favor_precision": True, "title_overlap": 0.8, "tail_short_words": 5,
        "drop_line_patterns": settings.drop_line_patterns[:9]})
    before_precision = previous_settings.model_copy(update={
        "favor_precision": False, "retry_below_chars": 0, "max_list_run": 0, "prune_xpath": (), "title_lines": 0,
        "tail_short_words": 0, "drop_line_patterns": settings.drop_line_patterns[:3]})

    def previous(page: Page) -> str:
        found = extract.extract(page.html, page.url, before_precision)
        return found.text if found else ""

    def last_round(page: Page) -> str:
        found = extract.extract(page.html, page.url, previous_settings)
        return found.text if found else ""

    single_settings = settings.model_copy(update={"combine_passes": False})

    def single_pass(page: Page) -> str:
        found = extract.extract(page.html, page.url, single_settings)
        return found.text if found else ""

    return {"trafilatura (reference)": reference, "newsflow before (default pass, fallbacks)": previous,
            "newsflow previous settings (favor_precision, 9 line patterns)": last_round,
            "newsflow third round (one pass, no combination)": single_pass, "newsflow extract": newsflow}


def split_of(page_id: str) -> str:
    """Half the pages (by a hash of the id) were used to choose the extraction settings, half never were."""
    return "untuned" if hashlib.blake2b(page_id.encode(), digest_size=4).digest()[0] % 2 == 0 else "tuned"


def run() -> tuple[list[Score], dict[str, list[tuple[str, float]]]]:
    """Scores overall, for English and per split, and each extractor's page F1 by page id."""
    pages = list(fundus_pages())
    subsets = {
        "English": [i for i, p in enumerate(pages) if p.lang == "en"],
        "tuned half": [i for i, p in enumerate(pages) if split_of(p.id) == "tuned"],
        "untuned half": [i for i, p in enumerate(pages) if split_of(p.id) == "untuned"],
    }
    rows, per_page = [], {}
    for name, fn in extractors().items():
        start = time.perf_counter()
        outputs = [fn(p) or "" for p in pages]
        elapsed = time.perf_counter() - start
        s_all, fs = score(name, pages, outputs, elapsed)
        rows.append(s_all)
        for label, idx in subsets.items():
            rows.append(score(f"{name}, {label}", [pages[i] for i in idx], [outputs[i] for i in idx],
                              elapsed * len(idx) / len(pages))[0])
        per_page[name] = [(p.id, f) for p, f in zip(pages, fs, strict=True)]
    return rows, per_page


# What each configured line pattern and pruned XPath is for, in config order (a markdown table cannot show regexes).
_PATTERNS = ("related-link teasers", "copyright", "tweet links", "tweet attributions", "photo credits",
             "advertisement labels", "newsletter", "donation prompts", "follow prompts", "date lines", "bylines",
             "reading time, rating", "sign-up prompts", "no letters")
_PRUNED = ("teaser cards (links around p/h)", "figcaption", "caption class", "author bio")


def ablations(settings: ExtractSettings) -> dict[str, ExtractSettings]:
    """The settings with each rule turned off (or favor_precision turned back on), one at a time."""
    rules: dict[str, dict] = {
        "favor_precision on": {"favor_precision": True}, "pass combination off": {"combine_passes": False},
        "combination: long lines only (no sentence rule)": {"combine_sentence_words": 10**6},
        "retry below 1,000 chars off": {"retry_below_chars": 0},
        "list runs off": {"max_list_run": 0}, "title lines off": {"title_lines": 0},
        "short tail off": {"tail_short_words": 0}}
    for i, _ in enumerate(settings.drop_line_patterns):
        label = _PATTERNS[i] if len(_PATTERNS) == len(settings.drop_line_patterns) else str(i + 1)
        rules[f"line pattern off: {label}"] = {
            "drop_line_patterns": settings.drop_line_patterns[:i] + settings.drop_line_patterns[i + 1:]}
    for i, _ in enumerate(settings.prune_xpath):
        label = _PRUNED[i] if len(_PRUNED) == len(settings.prune_xpath) else str(i + 1)
        rules[f"prune off: {label}"] = {"prune_xpath": settings.prune_xpath[:i] + settings.prune_xpath[i + 1:]}
    return {"configured": settings, **{name: settings.model_copy(update=u) for name, u in rules.items()}}


def ablation_table() -> str:
    """F1 on the tuned half with each rule off, one at a time: what each rule is worth where it was chosen."""
    from flows.core.settings import ExtractSettings
    from flows.text import extract

    pages = [p for p in fundus_pages() if split_of(p.id) == "tuned"]
    rows, base = [], None
    for name, settings in ablations(ExtractSettings()).items():
        outputs = []
        for page in pages:
            found = extract.extract(page.html, page.url, settings)
            outputs.append(found.text if found else "")
        s = score(name, pages, outputs, 0.0)[0]
        base = base or s
        rows.append([name, f"{s.f1:.4f}", f"{s.f1 - base.f1:+.4f}", f"{s.precision - base.precision:+.4f}",
                     f"{s.recall - base.recall:+.4f}", s.empty, s.under_half])
    return table(["tuned half, rule", "F1", "ΔF1", "Δprecision", "Δrecall", "empty", "< 0.5"], rows)


if __name__ == "__main__":
    print(ablation_table())
