"""The `newsflow search` query language, parsed by a small pure function (no DuckDB, no Prefect).

    climate "carbon tax" -coal       every positive term must match (AND), `-word` or `-"a phrase"` must not
    election OR vote turnout         OR joins the terms on either side: (election OR vote) AND turnout
    "prime minister"                 a phrase: its words in this order (checked on the text after retrieval)

Words are matched the way the index stores them: lower case, accents stripped, split on anything that is not a
letter or digit, stemmed in the index's language (flows/warehouse/search_index.py). A bare word that splits into
several (`covid-19`, `l'élection`) is a phrase of those. `OR` must be upper case (`or` is a word) and stand
between two positive terms. A term with no letter or digit (`&`, `-`) is ignored.

Every malformed query raises SearchSyntaxError (a QueryError: one line, exit 2), never anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flows.core.errors import QueryError

MAX_TERMS = 32  # past this a query is a paste, not a search; each term is a join in the index query
_ITEM = re.compile(r'(-?)"([^"]*)"|(\S+)')
_WORD = re.compile(r"[^\W_]+")


class SearchSyntaxError(QueryError):
    """A search query that cannot be parsed; the message says why in one line."""


@dataclass(frozen=True)
class Term:
    text: str  # as the user typed it, without quotes or the leading '-'
    group: int  # terms in the same group are OR-ed; groups are AND-ed (negative terms: their own group)
    negative: bool = False
    phrase: bool = False  # quoted, or a bare word of several words: its words must appear in this order

    @property
    def words(self) -> list[str]:
        return _WORD.findall(self.text)


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...]

    @property
    def positive(self) -> list[Term]:
        return [t for t in self.terms if not t.negative]

    @property
    def negative(self) -> list[Term]:
        return [t for t in self.terms if t.negative]

    def rows(self) -> list[dict[str, object]]:
        """The terms as the index query takes them (flows/warehouse/search.py): one struct per term."""
        return [{"t": i, "g": t.group, "neg": t.negative, "quoted": t.phrase, "raw": t.text}
                for i, t in enumerate(self.terms)]


def _items(text: str) -> list[tuple[str, bool, bool]]:
    """(text, negative, quoted) per item; `OR` comes back as ("OR", False, False) with quoted False."""
    if text.count('"') % 2:
        raise SearchSyntaxError('unbalanced quote in the search query (phrases go in "double quotes")')
    items = []
    pos = 0
    for m in _ITEM.finditer(text):
        if text[pos:m.start()].strip():  # a quote glued to a word: `abc"def ghi"`
            raise SearchSyntaxError(f"cannot read {text[pos:m.start()].strip()!r} in the search query")
        pos = m.end()
        if m.group(3) is not None:
            word = m.group(3)
            if '"' in word:
                raise SearchSyntaxError(f"a quote inside {word!r}: put a space before the phrase")
            negative = word.startswith("-") and len(word) > 1
            items.append((word[1:] if negative else word, negative, False))
        else:
            if not m.group(2).strip():
                raise SearchSyntaxError('an empty phrase ("") in the search query')
            items.append((m.group(2), bool(m.group(1)), True))
    return items


def parse(text: str) -> Query:
    """The query in `text`, or SearchSyntaxError saying what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        raise SearchSyntaxError("empty search query")
    items = _items(text)
    terms: list[Term] = []
    group = -1
    joined = False  # the previous item was OR
    for i, (word, negative, quoted) in enumerate(items):
        if word == "OR" and not quoted and not negative:
            prev_ok = bool(terms) and not joined and i > 0 and not items[i - 1][1]
            nxt = items[i + 1] if i + 1 < len(items) else None
            if not prev_ok or nxt is None or nxt[1] or (nxt[0] == "OR" and not nxt[2]):
                raise SearchSyntaxError("OR must stand between two terms that are not excluded (a OR b)")
            joined = True
            continue
        if not _WORD.search(word):
            if joined:
                raise SearchSyntaxError(f"{word!r} after OR has no letter or digit to search for")
            continue  # punctuation only: nothing to match
        if not (joined and not negative):
            group += 1
        joined = False
        terms.append(Term(word, group, negative, quoted or len(_WORD.findall(word)) > 1))
    if not any(not t.negative for t in terms):
        raise SearchSyntaxError("the search query needs a word to find (only excluded or empty terms)")
    if len(terms) > MAX_TERMS:
        raise SearchSyntaxError(f"too many terms in the search query ({len(terms)}; at most {MAX_TERMS})")
    return Query(tuple(terms))
