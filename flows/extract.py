"""Article extraction with trafilatura: clean text and metadata from one HTML page."""

from __future__ import annotations

import re
from dataclasses import dataclass

import trafilatura

from flows.settings import ExtractSettings

EXTRACTOR = "trafilatura"
EXTRACTOR_VERSION = trafilatura.__version__
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


def extract(html: bytes, url: str, settings: ExtractSettings) -> Extracted | None:
    """Main text and metadata, or None when trafilatura finds no article text."""
    doc = trafilatura.bare_extraction(html, url=url, **extractor_options(settings))
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
    )
