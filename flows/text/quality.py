"""Article quality flags: is the stored text the article, or a paywall teaser or a cookie-consent page?

Pure functions of the page HTML and the extracted text (issue 22, docs/quality.md). Each flag reads first what
the page declares (schema.org `isAccessibleForFree`, `wordCount`, `articleBody` in JSON-LD, microdata or meta
tags), then a short list of markers (a subscribe prompt, paywall CSS classes, consent wording). The functions never
raise on odd input: a flag that cannot be judged is left at its harmless value (free, not a teaser, not a consent
page).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any

FREE, PAYWALLED = "free", "paywalled"
# A body under this share of the length the page declares is a teaser (declared lengths at least TEASER_MIN_WORDS).
TEASER_SHARE = 0.5
TEASER_MIN_WORDS = 150
# A paywalled body under this many words is what the paywall let through, not the article.
PAYWALLED_SHORT_WORDS = 150
# A consent page is short and mostly consent wording; an article about cookie law is long.
CONSENT_MAX_WORDS = 400
CONSENT_SHARE = 0.5
_SCAN = 2_000_000  # characters of a page read for markers: a page past that is not a consent interstitial

_LD_JSON = re.compile(r"<script[^>]*application/ld\+json[^>]*>(.*?)</script\s*>", re.I | re.S)
# Microdata or meta: <... itemprop="isAccessibleForFree" content="false"> (attributes in either order).
_TAG = re.compile(r"<(?:meta|link|div|span|section|article)\b[^>]*isAccessibleForFree[^>]*>", re.I)
_CONTENT_ATTR = re.compile(r"""\b(?:content|value)\s*=\s*["']?\s*(true|false)""", re.I)
# Facebook/OpenGraph tiers, as news sites publish them: <meta property="article:content_tier" content="locked">.
_TIER = re.compile(r"""<meta\b[^>]*article:content_tier[^>]*\bcontent\s*=\s*["']?(locked|metered)""", re.I)
# Only on the blocks a wall is drawn with: a <p class="paywall"> marks paragraphs a wall may hide for some
# visitors, an <article class="paywall"> card a link to another, paid article, a <script class=...> nothing.
_CLASS = re.compile(r"""<(?:div|section|aside)\b[^>]*?\bclass\s*=\s*["']([^"']*)["']""", re.I)
# Class names paywall vendors and sites put on the wall itself.
PAYWALL_CLASSES = frozenset({
    "paywall", "paywall-overlay", "paywall-wrapper", "paywall-container", "paywall-content", "article-paywall",
    "js-paywall", "paywalled-content", "premium-paywall", "piano-paywall", "tp-modal", "subscriber-only",
    "subscription-wall", "regwall", "c-paywall", "o-paywall", "meteredcontent",
})
# Subscribe prompts, lower case, several languages: the text a wall leaves where the article stops.
SUBSCRIBE_PROMPTS = (
    "subscribe to continue reading", "subscribe to read more", "subscribe to read the full",
    "subscribe to keep reading", "subscribe to unlock", "this article is for subscribers",
    "this content is for subscribers",
    "available to subscribers only", "for subscribers only", "already a subscriber", "become a subscriber to",
    "to continue reading, subscribe", "to read the full article", "to read this article in full",
    "sign in to continue reading", "log in to continue reading", "the rest of this article is",
    "jetzt weiterlesen mit", "weiterlesen mit", "nur für abonnenten", "exklusiv für abonnenten",
    "sie sind bereits abonnent", "dieser artikel ist nur", "um diesen artikel zu lesen", "artikel freischalten",
    "réservé aux abonnés", "cet article est réservé", "il vous reste", "abonnez-vous pour lire",
    "contenido exclusivo para suscriptores", "suscríbete para seguir leyendo", "solo per gli abbonati",
    "riservato agli abbonati", "leia mais com", "exclusivo para assinantes",
)
# Consent wording, lower case: phrases of consent notices that ordinary prose rarely holds ("cookie" alone is a
# biscuit as often as a tracker). A line holding one is consent text.
CONSENT_MARKERS = (
    "consent", "accept all", "reject all", "accept cookies", "decline cookies", "use cookies", "cookies and similar",
    "cookie settings", "cookie policy", "cookie preferences", "manage preferences", "manage options",
    "privacy settings", "privacy policy", "our partners", "personalised ads", "personalized ads",
    "legitimate interest", "store and/or access information", "precise geolocation", "do not sell",
    "einwilligung", "alle akzeptieren", "cookie-einstellungen", "datenschutzeinstellungen", "datenschutzerklärung",
    "consentement", "tout accepter", "tout refuser", "consentimiento", "aceptar todo", "rechazar todo", "consenso",
    "accetta tutto", "rifiuta tutto",
)
# A consent notice names several of these; an article quoting one does not make a notice.
CONSENT_MIN_MARKERS = 3
_WORD = re.compile(r"\w+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_TAGS = re.compile(r"<[^>]*>")
_INVISIBLE = re.compile(r"<(script|style|noscript|template)\b.*?</\1\s*>", re.I | re.S)


@dataclass(frozen=True)
class Quality:
    access: str = FREE  # free | paywalled
    is_teaser: bool = False
    is_consent_page: bool = False
    why: str = ""  # the signals that set the flags, for evaluation and debugging (not stored)


@dataclass(frozen=True)
class Declared:
    """What the page declares about itself in structured data."""

    accessible: bool | None = None  # isAccessibleForFree of the article or of a part of it; False wins
    word_count: int | None = None  # schema.org wordCount
    body_words: int | None = None  # words in schema.org articleBody


def assess(page_html: bytes | str | None, text: str, title: str | None = None) -> Quality:
    """The quality flags of one article from its page (None: no page, e.g. a seed) and its extracted text.
    Never raises."""
    try:
        page = _as_text(page_html)[:_SCAN]
        declared = declared_of(page)
        prompt = ends_in_prompt(text, page)
        access, access_why = access_of(page, declared, prompt)
        teaser, teaser_why = teaser_of(text, declared, access)
        consent = is_consent(text, title)
    except Exception:  # a flag is a hint: an unforeseen input never costs the article
        return Quality(why="error")
    why = ",".join(w for w in (access_why, teaser_why, "consent" if consent else "") if w)
    return Quality(access, teaser, consent, why)


def _as_text(page_html: bytes | str | None) -> str:
    if page_html is None:
        return ""
    return page_html.decode("utf-8", "replace") if isinstance(page_html, bytes) else page_html


def words(text: str) -> int:
    """Words in a text; Chinese and Japanese, written without spaces, count a word per two characters."""
    cjk = len(_CJK.findall(text))
    return len(_WORD.findall(_CJK.sub(" ", text))) + (cjk + 1) // 2


def declared_of(page: str) -> Declared:
    """isAccessibleForFree, wordCount and articleBody from the page's JSON-LD, microdata and meta tags."""
    accessible: bool | None = None
    word_count = body_words = None
    for block in _LD_JSON.findall(page):
        try:
            data = json.loads(block.strip().rstrip(";"))
        except ValueError:
            continue
        for obj in _objects(data):
            flag = _bool(obj.get("isAccessibleForFree"))
            if flag is not None:
                accessible = flag if accessible is not False else False
            if word_count is None:
                word_count = _int(obj.get("wordCount"))
            body = obj.get("articleBody")
            if isinstance(body, str) and body_words is None:
                body_words = words(body)
    for tag in _TAG.findall(page):
        m = _CONTENT_ATTR.search(tag)
        if m:
            flag = m.group(1).lower() == "true"
            accessible = flag if accessible is not False else False
    return Declared(accessible, word_count, body_words)


def _objects(data: Any) -> list[dict[str, Any]]:
    """Every JSON object nested in `data` (iteratively: no recursion limit to hit)."""
    out, stack = [], [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _int(value: Any) -> int | None:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def access_of(page: str, declared: Declared, prompt: bool) -> tuple[str, str]:
    """free or paywalled, and the signal that decided: what the page declares wins over markers."""
    if declared.accessible is False:
        return PAYWALLED, "schema:not-free"
    if declared.accessible is True:  # over a content tier too: a page declaring both is free by its schema
        return FREE, ""
    if _TIER.search(page):
        return PAYWALLED, "meta:content_tier"
    if prompt:
        return PAYWALLED, "prompt"
    if has_paywall_class(page):
        return PAYWALLED, "class"
    return FREE, ""


def has_paywall_class(page: str) -> bool:
    return any(PAYWALL_CLASSES.intersection(m.lower().split()) for m in _CLASS.findall(page))


def ends_in_prompt(text: str, page: str = "") -> bool:
    """The text's last lines hold a subscribe prompt, or the page shows one right after the text ends: the wall is
    where the text stops. (The extractor drops prompt lines, so the page is read too.)"""
    if _has_prompt(text[-300:]):
        return True
    if not page or not text.strip():
        return False
    visible = " ".join(html.unescape(_TAGS.sub(" ", _INVISIBLE.sub(" ", page))).split())
    last = " ".join(text.split())[-40:]
    at = visible.rfind(last)
    return at >= 0 and _has_prompt(visible[at + len(last):at + len(last) + 300])


def _has_prompt(text: str) -> bool:
    tail = " ".join(text.lower().split())
    return any(p in tail for p in SUBSCRIBE_PROMPTS)


def teaser_of(text: str, declared: Declared, access: str) -> tuple[bool, str]:
    """Whether the body is a teaser of a longer article, and the signal that said so. A prompt on the page after
    the text makes it paywalled, not a teaser: pages often carry the whole text behind the wall (only a prompt
    in the text itself, where the extractor kept it, or a short paywalled text is a teaser)."""
    text_prompt = _has_prompt(text[-300:])
    n = words(text)
    word_count = declared.word_count or 0
    if 0.7 * len(text) <= word_count <= 1.3 * len(text):
        word_count = 0  # a "wordCount" as long as the text is in characters (seen on real pages): no measure
    expected = max(word_count, declared.body_words or 0)
    # A page that declares itself free is not a teaser: a body short of its declared length is an extraction loss.
    if declared.accessible is not True and expected >= TEASER_MIN_WORDS and n < expected * TEASER_SHARE:
        return True, f"teaser:{n}/{expected}words"
    if text_prompt:
        return True, "teaser:prompt"
    if access == PAYWALLED and n < PAYWALLED_SHORT_WORDS:
        return True, f"teaser:paywalled-{n}words"
    return False, ""


def is_consent(text: str, title: str | None = None) -> bool:
    """The body is mostly a cookie or consent notice: short, several consent phrases, and most of its words on
    lines holding one."""
    total = words(text)
    if total == 0 or total > CONSENT_MAX_WORDS:
        return False
    lower = text.lower()
    if sum(m in lower for m in CONSENT_MARKERS) < CONSENT_MIN_MARKERS:
        return False
    lines = [ln for ln in text.splitlines() if ln.strip()]
    consent = sum(words(ln) for ln in lines if any(m in ln.lower() for m in CONSENT_MARKERS))
    if title and any(m in title.lower() for m in CONSENT_MARKERS):
        consent += total // 4  # a consent title ("Cookie settings", "Privacy consent") tips a near call
    return consent >= total * CONSENT_SHARE
