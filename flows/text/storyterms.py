"""The terms a story is matched on: a language-light tokenizer (accents folded, English and French stopwords left
out, a few plural and verb endings cut) and the term counts of an article's title, lede and body.

No stemmer package: the search index's Snowball stemmers live in DuckDB's FTS extension, out of reach of a pure
function. Cutting `-s`, `-es`, `-ing`, `-ed` and French `-e`/`-s` endings is enough for two write-ups of one event to
share their words (docs/stories.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_WORD = re.compile(r"[^\W_]+")
_STOP = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours out over own same she should so some such than that the their theirs them then
there these they this those through to too under until up very was we were what when where which while who whom
why will with would you your yours said says say told new one two after year years people time week day monday
tuesday wednesday thursday friday saturday sunday according mr mrs ms
au aux avec ce ces cet cette dans de des du elle elles en et eux il ils je la le les leur leurs lui ma mais me
meme mes moi mon ne nos notre nous on ou par pas pour qu que qui sa se ses son sur ta te tes toi ton tu un une
vos votre vous c d j l m n s t y ete etre avoir fait faire plus comme tout tous toute toutes sans sous entre
depuis aussi apres avant deux selon dont ont sont est etait ainsi alors donc car si bien tres encore deja lors
""".split())
_LEDE_WORDS = 50  # counted twice: the lede says what happened


def fold(text: str) -> str:
    """Lower-cased, accents removed (so `Élysée` and `Elysee` are one word)."""
    if text.isascii():  # nothing to decompose: the per-character pass below costs most of an article's terms
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def stem(word: str) -> str:
    """A light suffix cut shared by English and French: plurals, -ing, -ed, a final -e."""
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith(("s", "x")) and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    return word


def _term(word: str) -> str | None:
    """A folded word's term: None for a stopword, a one-letter word or a number under 3 digits."""
    if word in _STOP or len(word) < 2 or (word.isdigit() and len(word) < 3):
        return None
    return stem(word)


def tokens(text: str) -> list[str]:
    """The stemmed content words of `text`, in order: no stopword, no one-letter word, no number under 3 digits."""
    return [t for word in _WORD.findall(fold(text)) if (t := _term(word)) is not None]


def _counts(text: str, into: Counter[str], memo: dict[str, str | None]) -> None:
    """Add the terms of `text` to `into`, each distinct word cut once (a body repeats its words)."""
    for word, n in Counter(_WORD.findall(fold(text))).items():
        term = memo[word] if word in memo else memo.setdefault(word, _term(word))
        if term is not None:
            into[term] += n


def term_counts(title: str, text: str, body_words: int, memo: dict[str, str | None] | None = None
                ) -> Counter[str]:
    """Term counts of an article: its title twice, its lede twice, its body (the first `body_words` words) once.
    `memo` (folded word -> term) may be shared by the calls for one batch: its articles share most words."""
    memo = {} if memo is None else memo
    words = text.split()
    counts: Counter[str] = Counter()
    _counts(" ".join(words[:body_words]), counts, memo)
    _counts(" ".join(words[:_LEDE_WORDS]), counts, memo)
    for term in tokens(title) * 2:
        counts[term] += 1
    return counts
