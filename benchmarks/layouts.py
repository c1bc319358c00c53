"""How copies change in the dedup evaluation (benchmarks/dedupset.py): a sub-editor's word edits, the copy changed
every way at once, and layouts, the same words with line breaks where another outlet or format puts them.

Each layout is applied to a whole document (its chrome too), as a plain-text rendering, a mail digest or a CMS that
keeps `<br>` tags would: where the breaks fall must not decide whether a copy is found.
"""

from __future__ import annotations

import random
import re
import textwrap
from collections.abc import Callable

_SENTENCE = re.compile(r"(?<=[.!?…])\s+")


def words(paragraphs: list[str] | tuple[str, ...]) -> list[str]:
    return [w for p in paragraphs for w in p.split()]


def join(lines: list[str]) -> str:
    return "\n".join(line for line in lines if line.strip())


def copy_edit(paragraphs: list[str], rate: float, rng: random.Random, vocab: list[str]) -> list[str]:
    """Replace, delete or insert words at `rate` of the word positions, as a sub-editor does."""
    out = []
    for para in paragraphs:
        kept = []
        for w in para.split():
            if rng.random() >= rate:
                kept.append(w)
                continue
            op = rng.random()
            if op < 0.5:
                kept.append(rng.choice(vocab))
            elif op < 0.75:
                kept += [w, rng.choice(vocab)]
        out.append(" ".join(kept) if kept else para)
    return out


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.splitlines() if p.strip()]


def wrap(width: int) -> Callable[[str, random.Random], str]:
    """Hard-wrapped at `width` characters, a blank line between paragraphs (a plain-text mail or digest)."""
    def apply(text: str, _rng: random.Random) -> str:
        return "\n\n".join(textwrap.fill(p, width, break_long_words=False, break_on_hyphens=False)
                           for p in _paragraphs(text))
    return apply


def br(text: str, rng: random.Random) -> str:
    """Paragraphs separated by `<br>` tags in their usual spellings, some doubled, on one line."""
    out = []
    for p in _paragraphs(text):
        out += [p, rng.choice(("<br>", "<br/>", "<br />", "<BR>", "<br><br>"))]
    return "".join(out[:-1])


def sentence_paragraphs(text: str, _rng: random.Random) -> str:
    """One sentence per paragraph."""
    return "\n\n".join(s for p in _paragraphs(text) for s in _SENTENCE.split(p) if s.strip())


def one_paragraph(text: str, _rng: random.Random) -> str:
    """Everything on one line."""
    return " ".join(_paragraphs(text))


def few_words(text: str, rng: random.Random) -> str:
    """A break every two to six words, wherever it falls (a narrow column copied as text)."""
    words = text.split()
    lines, i = [], 0
    while i < len(words):
        n = rng.randint(2, 6)
        lines.append(" ".join(words[i:i + n]))
        i += n
    return "\n".join(lines)


LAYOUTS: dict[str, Callable[[str, random.Random], str]] = {
    "wrap40": wrap(40), "wrap70": wrap(70), "br": br, "sentence_paragraphs": sentence_paragraphs,
    "one_paragraph": one_paragraph, "few_words": few_words,
}


def combined(paras: list[str], title: str, chrome: tuple[list[str], list[str]], rng: random.Random
             ) -> tuple[str, str]:
    """(headline, text) of a copy changed every way at once: abridged to 40-70% of its paragraphs (the first
    ones or a selection), copy-edited at 5-15% of its words, under a rewritten headline, inside another outlet's
    header and footer with a related link in the middle."""
    n = len(paras)
    keep = max(1, round(n * rng.uniform(0.4, 0.7)))
    kept = paras[:keep] if rng.random() < 0.5 else [paras[i] for i in sorted(rng.sample(range(n), keep))]
    vocab = words(paras)
    body = copy_edit(kept, rng.uniform(0.05, 0.15), rng, vocab)  # as the copy_edited kind
    headline = " ".join(copy_edit([title], 0.5, rng, vocab))  # as the lede_headline kind
    header, footer = chrome
    mid = len(body) // 2
    lines = [*header, headline, *body[:mid], f"Read more: {rng.choice(_RELATED)}", *body[mid:], *footer]
    return headline, join(lines)


# Related-link lines for the combined copy (not story titles of the set: they would be other stories' words).
_RELATED = ("What we know so far", "Live updates: the latest", "Analysis: what happens next",
            "Five things to know this week", "In pictures: the day in review", "Opinion: the view from here")
