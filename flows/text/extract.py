"""Article extraction with trafilatura: clean text and metadata from one HTML page.

One `trafilatura.bare_extraction` call gives the text and the metadata, with the configured setting (trafilatura's
default unless `favor_precision` / `favor_recall` is set). Then the line rules that won on the evaluation by
publisher (docs/quality.md, `make eval`): runs of more than `max_list_run` list items (related-link lists), lines
matching `drop_line_patterns` (teasers, credits, prompts, date-only lines, bylines), the page title repeated in
the first lines, and short lines after the last paragraph. Only when that call finds no text at all are other
passes tried, the longest winning: nested `<html>`/`<body>` documents flattened (lxml drops everything after
them), `favor_recall`, and the HTML inside a JSON string (hydration data of script-rendered pages).

Removed after the evaluation by publisher (issue 22) because they did not win by more than their noise on
publishers left out, or did not pay for their CPU: `prune_xpath`, the retry of short first passes, the
comparison with the plain pass, and the combination with a second, precision pass (benchmarks/extract_previous.py
keeps them for the evaluation).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, replace

import trafilatura

from flows.core.sections import ExtractSettings

EXTRACTOR = "trafilatura"
EXTRACTOR_VERSION = trafilatura.__version__
_BODY_OPEN = re.compile(rb"<body[\s>]", re.I)
_NESTED_OPEN = re.compile(rb"<(?:html|body)\b", re.I)
_NESTED_DOC = re.compile(rb"</?(?:html|body)\b[^>]*>|<head\b[^>]*>.*?</head\s*>", re.I | re.S)
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.){200,}?)"')
_HTML_LANG = re.compile(rb"<html[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)?", re.I)


@dataclass(frozen=True)
class Extracted:
    text: str
    title: str | None
    author: str | None
    published: str | None  # ISO date as found on the page
    language: str | None
    canonical_url: str | None
    site_name: str | None
    # which pass produced the text: default | flattened | favor_recall | embedded
    method: str = "default"


def extractor_options(settings: ExtractSettings) -> dict[str, bool]:
    """The trafilatura options in force, as recorded with each article."""
    return {
        "include_comments": settings.include_comments,
        "favor_precision": settings.favor_precision,
        "favor_recall": settings.favor_recall,
        "with_metadata": True,
    }


def page_language(html: bytes) -> str | None:
    """The page's declared <html lang>, reduced to its primary subtag."""
    m = _HTML_LANG.search(html[:4096])
    return m.group(1).decode().lower() if m else None


def flatten_nested(html: bytes) -> bytes | None:
    """The page with html/head/body tags after the first <body> removed; None when no document is nested."""
    m = _BODY_OPEN.search(html)
    if m is None or not _NESTED_OPEN.search(html, m.end()):
        return None
    return html[: m.end()] + _NESTED_DOC.sub(b"", html[m.end():])


def embedded_html(html: bytes) -> bytes | None:
    """The HTML fragment with the most paragraphs found in a JSON string of the page, as a page; None if none."""
    best, most = None, 1  # one paragraph is a caption or a teaser, not an article
    for m in _JSON_STRING.finditer(html.decode("utf-8", "replace")):
        try:
            value = json.loads(m.group(0))
        except ValueError:
            continue
        n = value.count("<p") if isinstance(value, str) else 0
        if n > most:
            best, most = value, n
    return f"<html><body><article>{best}</article></body></html>".encode() if best else None


def _pass(html: bytes, url: str, options: dict[str, bool], method: str) -> Extracted | None:
    try:
        doc = trafilatura.bare_extraction(html, url=url, **options)
    except AssertionError:
        # htmldate's cleaning asserts inside lxml on some malformed trees (`<iframe><html>`): the text is still
        # there, only the date search fails, so extract once more without metadata.
        doc = trafilatura.bare_extraction(html, url=url, **{**options, "with_metadata": False})
    if doc is None or not (doc.text or "").strip():
        return None
    return Extracted(
        text=doc.text.strip(),
        title=doc.title or None,
        author=doc.author or None,
        published=doc.date or None,
        language=doc.language or page_language(html),
        canonical_url=doc.url or None,
        site_name=doc.sitename or None,
        method=method,
    )


_LIST_ITEM = re.compile(r"^\s*[-•*]\s")


def drop_link_lists(text: str, max_run: int) -> str:
    """The text without runs of more than `max_run` consecutive list items: related-link and teaser lists.

    A list inside an article is usually short; the long ones trafilatura keeps are "more on this" blocks.
    The text is returned unchanged when nothing else would remain, or when `max_run` is 0.
    """
    if max_run <= 0:
        return text
    lines = text.splitlines()
    kept: list[str] = []
    run: list[str] = []
    for line in [*lines, ""]:
        if _LIST_ITEM.match(line):
            run.append(line)
            continue
        if len(run) <= max_run:
            kept += run
        run = []
        kept.append(line)
    out = "\n".join(kept[:-1]).strip()
    return out or text


def drop_lines(text: str, patterns: tuple[str, ...]) -> str:
    """The text without lines matching any of `patterns` (related-link teasers, copyright lines, embedded
    tweets); unchanged when nothing else would remain."""
    if not patterns:
        return text
    drop = re.compile("|".join(f"(?:{p})" for p in patterns), re.I)
    out = "\n".join(line for line in text.splitlines() if not drop.search(line)).strip()
    return out or text


_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def drop_title_lines(text: str, title: str | None, lines: int, overlap: float) -> str:
    """The text without the page title repeated in its first `lines` lines: a line is the title when the words
    they share are at least `overlap` of the longer of the two (so a lede that starts like the title stays);
    unchanged when nothing else would remain."""
    if not title or lines <= 0:
        return text
    want = Counter(_words(title))
    out = []
    for i, line in enumerate(text.splitlines()):
        words = _words(line)
        if i < lines and words and sum((Counter(words) & want).values()) >= overlap * max(len(words), want.total()):
            continue
        out.append(line)
    return "\n".join(out).strip() or text


# Chinese and Japanese are written without spaces: three ideographs or kana count as a word (about what an
# English word carries), or every line of theirs would look like a one-word label.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_SPACED_WORD = re.compile(f"[^\\W{_CJK}]+")


def word_count(line: str) -> int:
    """Words in a line, counting three CJK characters as one."""
    return len(_SPACED_WORD.findall(line)) + -(-len(_CJK_CHAR.findall(line)) // 3)


def drop_short_tail(text: str, long_words: int, short_words: int) -> str:
    """The text without lines under `short_words` words after its last line of `long_words` or more: bylines,
    agency tags, "Sources:", rating prompts below the article; unchanged when no line is that long."""
    if short_words <= 0:
        return text
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines) if word_count(line) >= long_words), default=None)
    if last is None:
        return text
    tail = [line for line in lines[last + 1:] if word_count(line) >= short_words]
    return "\n".join(lines[: last + 1] + tail).strip()


def clean_text(found: Extracted, settings: ExtractSettings) -> str:
    """The extracted text with the line rules applied: long lists, configured patterns, the repeated title and
    the short tail dropped."""
    text = drop_lines(drop_link_lists(found.text, settings.max_list_run), settings.drop_line_patterns)
    text = drop_title_lines(text, found.title, settings.title_lines, settings.title_overlap)
    return drop_short_tail(text, settings.tail_long_words, settings.tail_short_words)


def extract(html: bytes, url: str, settings: ExtractSettings) -> Extracted | None:
    """Main text and metadata, or None when no pass finds article text."""
    options = extractor_options(settings)
    found = _pass(html, url, options, "default") or _when_empty(html, url, options)
    return replace(found, text=clean_text(found, settings)) if found else None


def _when_empty(html: bytes, url: str, options: dict[str, bool]) -> Extracted | None:
    """The longest text of the other passes, for a page on which the configured pass found nothing; None if none.

    These run only then, so they cost nothing on the pages that have text (a page that comes out empty scores 0).
    """
    flat = flatten_nested(html)
    candidates = [_pass(flat, url, options, "flattened") if flat is not None else None]
    if not options["favor_recall"]:
        candidates.append(_pass(html, url, {**options, "favor_recall": True, "favor_precision": False},
                                "favor_recall"))
    kept = [c for c in candidates if c is not None]
    if kept:
        return max(kept, key=lambda c: len(c.text))
    embedded = embedded_html(html)
    found = _pass(embedded, url, options, "embedded") if embedded else None
    # The synthetic page has no metadata of its own: take the page's declared language.
    return replace(found, language=page_language(html)) if found else None
