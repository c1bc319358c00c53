"""A phrase checked in Python (flows/warehouse/search_phrase.py) gives DuckDB's answer (search_plan's
`contains(norm_text, norm_phrase)`, what the SQL macro checks), or says it cannot: on generated texts and phrases
mixing ASCII, accented and decomposed letters, combining marks, Greek, Cyrillic, CJK, full-width forms, separators of
every kind and code points outside the simple ranges (Hangul, emoji).

Covers: flows.warehouse.search_phrase, flows.warehouse.search_chars
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.warehouse import search_phrase as phrase
from flows.warehouse import search_plan as plan

_LETTERS = [*"abcsinchtAÉéèÜüßıİΣσςЖжé中国かがＡａ", "e\u0301", "u\u0308", "\u3099", "\u0301"]
_SEPS = [" ", "  ", "-", "'", ".", ", ", "\n", "\u00a0", "\u2014", "\u201e", "\u00ad", "\u200b", "。", "（", "\x01"]
_ODD = ["한", "😀", "\u1100", "ǆ", "ŉ"]  # outside the simple ranges, or a code point that is not one letter


@pytest.fixture(scope="module")
def conn() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as c:
        yield c


@pytest.fixture(scope="module")
def chars() -> phrase.Chars:
    return phrase.chars()


def test_table_is_duckdbs(conn: duckdb.DuckDBPyConnection) -> None:
    """flows/warehouse/search_chars.py is what this DuckDB does (after an upgrade of DuckDB: write it again with
    `python -m flows.warehouse.search_phrase`)."""
    assert phrase._TABLE.read_text() == phrase.source(conn)


def _duckdb(conn: duckdb.DuckDBPyConnection, title: str, text: str, raw: str) -> tuple[bool, str]:
    return conn.execute(f"select contains({plan.norm_text('x')}, {plan.norm_phrase('x.raw')}), "
                        f"{plan.norm_phrase('x.raw')} from (select $t as title_text, $x as text, $r as raw) x",
                        {"t": title, "x": text, "r": raw}).fetchone()  # type: ignore[return-value]


def _one(chars: phrase.Chars, found: phrase.Phrase, title: str, text: str) -> bool | None:
    body = title + " " + text
    return phrase.holds(chars, found, [body], phrase.kinds(chars, [body]))[0]


_word = st.lists(st.sampled_from(_LETTERS), min_size=1, max_size=5).map("".join)
_text = st.lists(st.one_of(_word, st.sampled_from(_SEPS), st.sampled_from(_ODD)), max_size=25).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=_text, text=_text, pick=st.integers(0, 10**6), size=st.integers(1, 12), own=_text)
def test_python_check_agrees_with_duckdb(conn: duckdb.DuckDBPyConnection, chars: phrase.Chars, title: str,
                                         text: str, pick: int, size: int, own: str) -> None:
    body = title + " " + text
    start = pick % max(1, len(body))
    for raw in (body[start:start + size], own):  # a piece of the text (often held), and any phrase
        held, norm = _duckdb(conn, title, text, raw)
        words = phrase.words(chars, raw)
        if words is not None:
            assert " " + " ".join(words) + " " == norm
        if words:
            got = _one(chars, phrase.pattern(chars, words), title, text)
            assert got is None or got == held, (title, text, raw)


def test_examples(conn: duckdb.DuckDBPyConnection, chars: phrase.Chars) -> None:
    cases = [("", "Er wollte sich nicht äußern", "sich nicht", True),
             ("", "Er wollte sich, nicht", "sich nicht", True),  # punctuation is a separator
             ("", "Er wollte sich selbst nicht", "sich nicht", False),
             ("", "Ob sie SICH NICHT", "sich nicht", True),
             ("Sich nicht", "", "sich nicht", True),  # in the title
             ("a sich", "nicht b", "sich nicht", True),  # across title and text, as norm_text joins them
             ("", "sichnicht", "sich nicht", False),
             ("", "Élection présidentielle", "election presidentielle", True),
             ("", "E\u0301lection pre\u0301sidentielle", "élection présidentielle", True),  # decomposed accents
             ("", "la u\u0308ber \u0308 alles", "uber alles", False),  # a token of marks alone: two spaces
             ("", "dessich nicht", "sich nicht", False),
             ("", "sich nichts", "sich nicht", False)]
    for title, text, raw, want in cases:
        assert _duckdb(conn, title, text, raw)[0] is want, (title, text, raw)
        words = phrase.words(chars, raw)
        assert words is not None
        assert _one(chars, phrase.pattern(chars, words), title, text) is want, (title, text, raw)
    # Hangul is not simple: DuckDB checks it
    assert _one(chars, phrase.pattern(chars, ["sich", "nicht"]), "", "한 sich nicht") is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet="sichnSICHN -.'\n1", max_size=40), pick=st.integers(0, 10**6),
       size=st.integers(1, 12))
def test_ascii_texts(conn: duckdb.DuckDBPyConnection, chars: phrase.Chars, text: str, pick: int,
                     size: int) -> None:
    """ASCII texts take their own expression (search_phrase.Phrase.ascii)."""
    start = pick % max(1, len(text))
    for raw in (text[start:start + size], "sich nicht", "Sich-nicht"):
        held, _ = _duckdb(conn, "", text, raw)
        words = phrase.words(chars, raw)
        if words:
            assert _one(chars, phrase.pattern(chars, words), "", text) is held, (text, raw)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.one_of(_text, st.text(alphabet="sichnt SICHNT-.", max_size=30)), min_size=1, max_size=12),
       raw=st.sampled_from(["sich nicht", "sich", "nicht sich", "ich", "e", "中国", "u"]))
def test_texts_searched_together_as_one_by_one(chars: phrase.Chars, texts: list[str], raw: str) -> None:
    """Texts searched at once (joined) get the answers each gets alone: no match spans two texts."""
    found = phrase.pattern(chars, phrase.words(chars, raw))  # type: ignore[arg-type]
    together = phrase.holds(chars, found, texts, phrase.kinds(chars, texts))
    assert together == [phrase.holds(chars, found, [t], phrase.kinds(chars, [t]))[0] for t in texts]
    # ... and those of texts of the other kinds joined with them
    assert phrase.holds(chars, found, [*texts, "sich nicht"], phrase.kinds(chars, [*texts, "sich nicht"]))[:-1] \
        == together
