"""The extraction newsflow shipped before issue 22, frozen for the grouped evaluation (benchmarks/eval_grouped.py).

flows/text/extract.py wrapped trafilatura with a retry of short or empty first passes (unpruned, flattened, plain,
favor_recall, JSON-embedded HTML), a combination with a second, precision pass, `prune_xpath`, and line rules
(long lists, `drop_line_patterns`, the repeated title, the short tail). The grouped evaluation by publisher kept
only the steps that won by more than their noise; this copy lets `make eval` keep showing the rest, step by step.
Code as it was at 49f87bc, with its settings as a plain dataclass.
"""


from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, replace

import trafilatura


@dataclass(frozen=True)
class PreviousSettings:
    min_text_chars: int = 200
    include_comments: bool = False
    favor_precision: bool = False
    favor_recall: bool = False
    retry_below_chars: int = 1000
    max_list_run: int = 2
    # A first pass shorter than this is compared with the plain pass (flows/text/extract.py adds_prose); 0: never.
    compare_below_chars: int = 2000
    prose_line_words: int = 20
    prose_share: float = 0.1
    # With favor_precision off, the first pass (when it wins) is combined with the precision pass: its lines
    # precision dropped stay only when they are prose (combine_long_words+ words, or combine_sentence_words+
    # ending a sentence). Chosen on the tuned half of the fundus pages.
    combine_passes: bool = True
    combine_long_words: int = 30
    combine_sentence_words: int = 14
    # Lines dropped from every extracted text (case-insensitive regular expressions).
    drop_line_patterns: tuple[str, ...] = (
        r"^\W*(also read|read next|read more|related|lesen sie auch|mehr zum thema|à lire aussi|lire aussi"
        r"|leia também|lee también|leer más|czytaj także|czytaj też)\b",
        r"^\W*(©|copyright\b|\(c\)\s)|all rights reserved",
        r"pic\.twitter\.com/",
        r"\(@\w+\)\s+\w+\.?\s+\d{1,2},\s+\d{4}\s*$",
        r"^\W*(photos?|images?|fotos?|bild|фото|credits?|picture)\s*:",
        r"^\W*(advertisement|anzeige|werbung|publicité|passer la publicité|article content|hauptinhalt"
        r"|recommended videos)\W*$",
        r"newsletter",
        r"^\W*(unterstützen sie|support (our|us)\b|hat ihnen dieser artikel gefallen|wie hat ihnen)",
        r"^\W*(follow (us|\w+ on)|folgst du|folgen sie)",
        # Lines that are only a date (numeric, with a month name, or CJK), a byline, a reading time or rating, a
        # sign-up prompt, or no letters at all: page furniture in any language, never a sentence of prose.
        r"^\W*(?:[^\W\d]+\W+){0,2}\d{1,4}[./-]\s?\d{1,2}[./-]\s?\d{2,4}(?:\W+\d{1,2}[:.]\d{2})?(?:\W*(?:uhr|h|am|pm))?\W*$"
        r"|^\W*(?:\d{1,2}:\d{2}\W+\w{2,4}\W+)?(?:[^\W\d]+,?\s+)?(?:\d{1,2}\.?\s+)?(?:jan|feb|m[aä]r|apr|ma[iy]|jun|jul|aug"
        r"|sep|o[ck]t|nov|de[cz])\w*\.?\s+(?:\d{1,2},?\s+)?\d{4}\W*$"
        r"|^\W*\d{4}年\d{1,2}月\d{1,2}日[^。]{0,40}$",
        r"^\W*(?:by|von|par|por|door|av|af|di|od)\s+(?-i:[A-ZÀ-ÖØ-Þ])[\w.'-]+(?:\s+(?-i:[A-ZÀ-ÖØ-Þ])[\w.'-]+){0,3}"
        r"(?:,\s*(?-i:[A-ZÀ-ÖØ-Þ])[\w.'-]+(?:\s+[\w.'-]+)?)?\s*$",
        r"^\W*(?:lesedauer|reading time|lesezeit|temps de lecture|tiempo de lectura)\b\W*\d+"
        r"|^\W*\d+\s*min(?:ute)?s?\.?\s+(?:read|lesezeit|lesedauer|de lecture|de lectura)\W*$"
        r"|^\W*(?:durchschnittliche bewertung|average rating|bewertung|rating)\s*:\s*[\d,.]+\W*$",
        r"^\W*(?:sign up|subscribe|abonniere|abonnieren sie|jetzt abonnieren|abonnez-vous|suscríbete)\b",
        r"^(?=.*\S)[\W_]+$",
    )
    # Elements removed before extraction (XPath): links wrapping a paragraph or heading are teaser cards of
    # other articles; captions; author bios. Chosen on the tuned half of the fundus pages.
    prune_xpath: tuple[str, ...] = (
        "//a[.//p or .//h1 or .//h2 or .//h3 or .//h4 or .//h5 or .//h6]",
        "//figcaption",
        "//*[contains(@class,'caption')]",
        "//*[contains(@class,'author-bio') or contains(@class,'author__bio') or contains(@class,'authorBio')]",
    )
    # Of the first title_lines lines, those whose words are at least title_overlap of the page title's (and
    # vice versa) are the headline repeated, not the body; 0 lines: keep them.
    title_lines: int = 2
    title_overlap: float = 0.7
    # After the last line of tail_long_words+ words, lines under tail_short_words words (bylines, agency tags,
    # "Sources:", rating prompts) are dropped; 0: keep them.
    tail_long_words: int = 15
    tail_short_words: int = 8


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
    # which pass produced the text: default | combined | plain | unpruned | flattened | favor_recall | embedded
    method: str = "default"


def extractor_options(settings: PreviousSettings) -> dict[str, bool | list[str]]:
    """The trafilatura options in force, as recorded with each article."""
    options: dict[str, bool | list[str]] = {
        "include_comments": settings.include_comments,
        "favor_precision": settings.favor_precision,
        "favor_recall": settings.favor_recall,
        "with_metadata": True,
    }
    if settings.prune_xpath:
        options["prune_xpath"] = list(settings.prune_xpath)
    return options


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


def _pass(html: bytes, url: str, options: dict[str, bool | list[str]], method: str) -> Extracted | None:
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


def clean_text(found: Extracted, settings: PreviousSettings) -> str:
    """The extracted text with the line rules applied: long lists, configured patterns, the repeated title and
    the short tail dropped."""
    text = drop_lines(drop_link_lists(found.text, settings.max_list_run), settings.drop_line_patterns)
    text = drop_title_lines(text, found.title, settings.title_lines, settings.title_overlap)
    return drop_short_tail(text, settings.tail_long_words, settings.tail_short_words)


def adds_prose(first: str, other: str, settings: PreviousSettings) -> bool:
    """Whether `other` is `first` plus more of the article: the lines it adds are mostly prose (lines of at least
    `prose_line_words` words) and come to at least `prose_share` of `first`'s words. Menus, captions and teaser
    lists, what precision leaves out, are short lines."""
    have = set(first.splitlines())
    added = [len(line.split()) for line in other.splitlines() if line not in have]
    prose = sum(n for n in added if n >= settings.prose_line_words)
    return bool(added) and prose >= 0.8 * sum(added) and prose >= settings.prose_share * len(first.split())


# A line ending a sentence: final punctuation, possibly inside a closing quote.
_SENTENCE_END = re.compile(r"[.!?…。！？\"'»”]\s*$")


def combine_passes(default: str, precise: str, long_words: int, sentence_words: int) -> str:
    """The default pass's lines that the precision pass also kept, plus those it dropped that are prose (at least
    `long_words` words, or `sentence_words` ending a sentence), in the default pass's order; unchanged when
    nothing would remain."""
    have = set(precise.splitlines())
    kept = [line for line in default.splitlines()
            if line in have or (n := word_count(line)) >= long_words
            or (n >= sentence_words and _SENTENCE_END.search(line))]
    return "\n".join(kept).strip() or default


def extract(html: bytes, url: str, settings: PreviousSettings) -> Extracted | None:
    """Main text and metadata, or None when no pass finds article text."""
    found = _extract(html, url, settings)
    if found is None and settings.prune_xpath:
        # Pruning must never cost a whole article (a page wrapped in one link): without it, as before.
        found = _extract(html, url, replace(settings, prune_xpath=()))
    if found is None:
        return None
    return replace(found, text=clean_text(found, settings))


def _combined(html: bytes, url: str, found: Extracted, options: dict[str, bool | list[str]],
              settings: PreviousSettings) -> Extracted:
    """The first pass combined with the precision pass (`combine_passes`); any other pass as it is."""
    if found.method != "default" or settings.favor_precision or not settings.combine_passes:
        return found
    # The plain pass keeps paragraphs precision cuts, precision drops the short boilerplate the plain pass keeps
    # (teaser headlines, prompts): agreement on short lines, the plain pass's prose. Metadata came with the first.
    precise = _pass(html, url, {**options, "favor_precision": True, "with_metadata": False}, "precision")
    if precise is None:
        return found
    text = combine_passes(found.text, precise.text, settings.combine_long_words, settings.combine_sentence_words)
    return found if text == found.text else replace(found, text=text, method="combined")


def _extract(html: bytes, url: str, settings: PreviousSettings) -> Extracted | None:
    options = extractor_options(settings)
    found = _pass(html, url, options, "default")
    if found is not None and len(found.text) >= max(settings.min_text_chars, settings.retry_below_chars):
        if settings.favor_precision and len(found.text) < settings.compare_below_chars:
            # Precision sometimes stops an article at an element it takes for boilerplate (an inline teaser box):
            # the plain pass wins when what it adds is prose.
            plain = _pass(html, url, {**options, "favor_precision": False}, "plain")
            if plain is not None and adds_prose(drop_link_lists(found.text, settings.max_list_run),
                                                drop_link_lists(plain.text, settings.max_list_run), settings):
                return plain
        return _combined(html, url, found, options, settings)
    candidates = [found]
    if "prune_xpath" in options:
        # A pruned element may have held the article itself (markup that lxml nests inside a teaser link): the
        # unpruned pass competes when pruning cost more than half the text; teasers and captions never weigh that.
        unpruned = _pass(html, url, {k: v for k, v in options.items() if k != "prune_xpath"}, "unpruned")
        if unpruned is not None and len(unpruned.text) > 2 * len(found.text if found else ""):
            candidates.append(unpruned)
    flat = flatten_nested(html)
    if flat is not None:
        candidates.append(_pass(flat, url, options, "flattened"))
    if settings.favor_precision:
        # Precision can cut a short article to its first paragraphs: trafilatura's plain pass may keep more.
        candidates.append(_pass(html, url, {**options, "favor_precision": False}, "plain"))
    if not settings.favor_recall:
        candidates.append(_pass(html, url, {**options, "favor_recall": True, "favor_precision": False},
                                "favor_recall"))
    kept = [c for c in candidates if c is not None]
    if kept:
        return _combined(html, url, max(kept, key=lambda c: len(c.text)), options, settings)
    embedded = embedded_html(html)
    found = _pass(embedded, url, options, "embedded") if embedded else None
    if found is None:
        return None
    # The synthetic page has no metadata of its own: take the page's declared language.
    return replace(found, language=page_language(html))
