"""Phrases checked on an article's text in Python, with the result DuckDB gives for search_plan's
`contains(norm_text, norm_phrase)`. No Prefect here.

Why: DuckDB takes ~0.18 ms of CPU per text of 1.8 KB for that check (a regular expression over Unicode classes,
then accents stripped, over the whole text), plus ~5 ms to compile each Unicode-class expression of a statement; a
phrase of words common in a language group but seldom next to each other checks thousands of texts (4 s at a
million articles). Here the texts of a batch are joined and searched by one regular expression.

How it stays DuckDB's answer: norm_text is lower() (one code point to one), each run of code points that are not
letters, digits or marks replaced by one space, then accents stripped. For the code points of `_RANGES`, DuckDB
itself says (search_chars.py, written from DuckDB by `python -m flows.warehouse.search_phrase` and checked against
it by tests/test_search_phrase.py) what each one becomes alone: a separator, one letter, or nothing (a combining
mark); a code point becoming two letters is left out. For those **simple** code points stripping accents from a
string is stripping them from each code point (a code point decomposes alone; after the marks are stripped nothing
composes again: that takes Hangul, which is left out). A text made only of simple code points therefore holds the
phrase `w1 w2` exactly when its raw text has a run of code points becoming w1 (marks anywhere in it), preceded by
a separator or the start, then separators, a run becoming w2, then a separator or the end: a regular expression of
character classes. Any other text is checked by DuckDB as before.
"""

from __future__ import annotations

import bisect
import itertools
import pprint
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb
import numpy as np

from flows.warehouse.search_segments import SPLIT

# Latin, Greek, Cyrillic; punctuation, symbols and enclosed forms; CJK punctuation, kana and ideographs; full-width
# forms and the replacement character. Not U+FFFF (_JOIN), nor Hangul (syllables and jamo compose).
_RANGES = ((0x01, 0x052F), (0x1E00, 0x1FFF), (0x2000, 0x2BFF), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xFF00, 0xFFEF),
           (0xFFF9, 0xFFFD))
_TABLE = Path(__file__).with_name("search_chars.py")

Ranges = tuple[tuple[int, int], ...]


LETTER, SEP, MARK, OTHER = 0, 1, 2, 3
ASCII = -1  # a text of ASCII code points only (all simple)


@dataclass(frozen=True)
class Chars:
    """What DuckDB makes of each simple code point: `kind` per BMP code point (LETTER: one letter, `fold` says
    which when not itself; SEP: a separator; MARK: nothing, a combining mark, which DuckDB keeps in a word and then
    strips; OTHER: not simple), `sep` the regular expression class of the separators."""
    kind: np.ndarray
    fold: dict[str, str]
    folded: dict[str, list[str]]  # letter -> the code points other than itself that become it
    sep: str
    marks: str  # the class of the marks followed by `*` ("" without any)

    def of(self, c: str) -> int:
        i = ord(c)
        return int(self.kind[i]) if i < len(self.kind) else OTHER

    def letter_class(self, x: str, only_ascii: bool = False) -> str:
        """The class of the code points that become letter x (of ASCII ones only); never matching for none."""
        own = [x] if self.of(x) == LETTER and self.fold.get(x, x) == x else []
        found = [c for c in own + self.folded.get(x, []) if c.isascii() or not only_ascii]
        return "[" + "".join(re.escape(c) for c in found) + "]" if found else "(?!)"



def _ranges(codes: list[int]) -> Ranges:
    """Sorted code points as (first, last) runs."""
    out: list[tuple[int, int]] = []
    for c in codes:
        if out and out[-1][1] == c - 1:
            out[-1] = (out[-1][0], c)
        else:
            out.append((c, c))
    return tuple(out)


def _class(ranges: Ranges) -> str:
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


def measure(conn: duckdb.DuckDBPyConnection) -> tuple[Ranges, Ranges, Ranges, dict[int, str]]:
    """DuckDB's normalisation of each code point of _RANGES, alone: the runs of those becoming a separator, nothing
    and one letter, and the letters that become another letter than themselves (code point -> letter). Code
    points becoming two letters are in none."""
    ranges = " union all ".join(f"select unnest(range({a}, {b + 1})) as i" for a, b in _RANGES)
    rows = conn.execute(f"""
        select i, regexp_full_match(lower(chr(i::integer)), {_lit(SPLIT)}) as sep,
               strip_accents(lower(chr(i::integer))) as o
        from ({ranges}) order by i""").fetchall()
    seps, marks, letters, fold = [], [], [], {}
    for i, sep, o in rows:
        if sep:
            seps.append(i)
        elif not o:
            marks.append(i)
        elif len(o) == 1:
            letters.append(i)
            if o != chr(i):
                fold[i] = o
    return _ranges(seps), _ranges(marks), _ranges(letters), fold


def source(conn: duckdb.DuckDBPyConnection) -> str:
    """The text of search_chars.py: `measure` as Python constants (FOLD as two strings: code points, letters)."""
    sep, marks, letters, fold = measure(conn)

    def chunks(text: str) -> str:
        return "(\n    " + "\n    ".join(repr(text[i:i + 40]) for i in range(0, len(text), 40)) + ")"

    def runs(r: Ranges) -> str:
        return pprint.pformat(r, width=108, compact=True)

    return (f'"""DuckDB {duckdb.__version__}\'s normalisation of the simple code points (search_phrase.py),\n'
            "written by `python -m flows.warehouse.search_phrase`; tests/test_search_phrase.py checks it."
            '"""\n\n'
            f"SEP = {runs(sep)}\nMARKS = {runs(marks)}\nLETTERS = {runs(letters)}\n"
            f"FOLD_FROM = {chunks(''.join(map(chr, fold)))}\nFOLD_TO = {chunks(''.join(fold.values()))}\n")


@cache
def chars() -> Chars:
    """The table of search_chars.py, ready for the checks (~1 ms)."""
    from flows.warehouse import search_chars as t

    kind = np.full(0x10000, OTHER, np.uint8)  # surrogates stay OTHER: a code point outside the BMP
    for ranges, k in ((t.LETTERS, LETTER), (t.SEP, SEP), (t.MARKS, MARK)):
        for a, b in ranges:
            kind[a:b + 1] = k
    fold = dict(zip(t.FOLD_FROM, t.FOLD_TO, strict=True))
    folded: dict[str, list[str]] = {}
    for c, o in fold.items():
        folded.setdefault(o, []).append(c)
    return Chars(kind, fold, folded, f"[{_class(t.SEP)}]", f"[{_class(t.MARKS)}]*" if t.MARKS else "")


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def words(ch: Chars, raw: str) -> list[str] | None:
    """norm_phrase of `raw` as its words, when `raw` is made of simple code points (None: DuckDB's)."""
    out, word = [], []
    for c in raw:
        k = ch.of(c)
        if k == OTHER:
            return None
        if k == SEP:
            if word:
                out.append("".join(word))
            word = []
        elif k == LETTER:
            word.append(ch.fold.get(c, c))
    if word:
        out.append("".join(word))
    return out


class Phrase:
    """The expressions finding a phrase in a simple raw text, each compiled when a text needs it (a class of
    hundreds of code points takes milliseconds to compile): `ascii` for an ASCII text, `plain` for one without
    marks, `full` for one with marks. The first two start with a class of letters, which the regular expression
    engine scans for quickly."""

    def __init__(self, ascii_: str, plain: str, full: str) -> None:
        self._ascii, self._plain, self._full = ascii_, plain, full

    @property
    def ascii(self) -> re.Pattern[str]:
        return re.compile(self._ascii)  # the re module keeps the compiled expressions

    @property
    def plain(self) -> re.Pattern[str]:
        return re.compile(self._plain)

    @property
    def full(self) -> re.Pattern[str]:
        return re.compile(self._full)


def pattern(ch: Chars, phrase: list[str]) -> Phrase:
    """The expressions over a simple raw text that find the phrase (its normalised words) as norm_text would: runs
    of code points becoming its words, separated by separators, with a separator or the end of the text on
    either side."""
    def word(w: str, marks: str, only_ascii: bool = False) -> str:  # a run of code points becoming w
        return marks + "".join(ch.letter_class(x, only_ascii) + marks for x in w)

    def plain(sep: str, not_sep: str, only_ascii: bool) -> str:
        # `(?<!N.)` after the first letter: the code point before it is a separator, or there is none.
        return (ch.letter_class(phrase[0][0], only_ascii) + f"(?<!{not_sep}.)" + word(phrase[0][1:], "", only_ascii)
                + "".join(f"{sep}+{word(w, '', only_ascii)}" for w in phrase[1:]) + f"(?!{not_sep})")

    full = f"(?:^|(?<={ch.sep})){f'{ch.sep}+'.join(word(w, ch.marks) for w in phrase)}(?={ch.sep}|$)"
    # In an ASCII text the separators are exactly the ASCII code points that are not letters or digits.
    return Phrase(plain(r"[\x00-/:-@\[-`{-\x7f]", "[a-zA-Z0-9]", True), plain(ch.sep, "[^" + ch.sep[1:], False), full)


_JOIN = " \uffff "  # between two texts searched at once: U+FFFF is in no class, so no match spans two texts


def kinds(ch: Chars, bodies: list[str]) -> list[int]:
    """Per text: ASCII, LETTER (simple, without marks), MARK (simple, with marks) or OTHER; in one pass over
    the non-ASCII ones."""
    out = [ASCII if b.isascii() else OTHER if "\uffff" in b else LETTER for b in bodies]
    rest = [i for i, k in enumerate(out) if k == LETTER]
    if rest:
        units = np.frombuffer("\uffff".join(bodies[i] for i in rest).encode("utf-16-le", "surrogatepass"), np.uint16)
        kind = ch.kind[units]
        bounds = np.flatnonzero(units == 0xFFFF)
        kind[bounds] = LETTER
        worst = np.maximum.reduceat(kind, np.concatenate(([0], bounds + 1)))
        for i, k in zip(rest, worst.tolist(), strict=True):
            out[i] = SEP if k == SEP else k  # LETTER or SEP: plain
    return out


def holds(ch: Chars, found: Phrase, bodies: list[str], kind: list[int]) -> list[bool | None]:
    """Per text (its title, a space, its text) of `kinds` `kind`: whether norm_text contains the phrase of
    `found`; None when the text is not simple. The plain texts are searched at once, joined."""
    out: list[bool | None] = [None] * len(bodies)
    plain = [i for i, k in enumerate(kind) if k in (ASCII, LETTER, SEP)]
    if plain:
        expr = found.ascii if all(kind[i] == ASCII for i in plain) else found.plain
        big = _JOIN.join(bodies[i] for i in plain)
        starts = list(itertools.accumulate((len(bodies[i]) + len(_JOIN) for i in plain[:-1]), initial=0))
        for i in plain:
            out[i] = False
        pos = 0
        while (m := expr.search(big, pos)) is not None:
            j = bisect.bisect_right(starts, m.start()) - 1
            out[plain[j]] = True
            if j + 1 == len(starts):
                break
            pos = starts[j + 1]
    for i, k in enumerate(kind):
        if k == MARK:
            out[i] = found.full.search(bodies[i]) is not None
    return out

if __name__ == "__main__":
    with duckdb.connect() as c:
        text = source(c)
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if _TABLE.read_text() == text else f"{_TABLE} differs from DuckDB {duckdb.__version__}'s")
    _TABLE.write_text(text)
