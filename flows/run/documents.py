"""Stage 3, documents: extract each page (or keep the feed summary), sign it for dedup, and tag its entities.

The CPU-heavy functions here (`build_docs`, `tag_texts`) run in worker processes. Each unit of work is isolated:
an unexpected exception while extracting one page becomes that page's `internal_error` row (its feed summary is
kept when there is one), and one text that breaks the tagger is stored untagged with the reason, never the end
of the batch.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Executor
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flows.core.errors import INTERNAL_ERROR, describe, failpoint
from flows.core.languages import language_tag
from flows.core.records import EARLIEST_PUBLISHED, Document
from flows.core.sections import DedupSettings
from flows.core.settings import Settings
from flows.core.urls import redact
from flows.feeds.parse import FeedEntry, entry_url
from flows.text import dedup, entities, extract, quality
from flows.text.seeds import Seed
from flows.warehouse import rawcodec
from flows.web.fetch import FetchResult

_HTML_TYPES = ("", "text/html", "application/xhtml+xml", "text/plain", "application/xml", "text/xml")
# Texts per tagging call: small, so no worker idles at the end of a run; spaCy tags 2, 4, 8 or 16 texts per call
# at the same cost per text (126-139 ms each, alternating, on the benchmark pages).
NER_CHUNK = 4
# How far after its fetch a feed's date for an entry is still taken (time zones, clocks a little ahead).
FUTURE_SLACK = timedelta(days=1)
logger = logging.getLogger("newsflow.documents")


def page_row(entry: FeedEntry, result: FetchResult | None) -> dict[str, Any]:
    """The entry's `page_fetches` row, before its outcome is known."""
    return {"url": entry_url(entry), "feed": entry.feed, "http_status": result.status if result else None,
            "final_url": redact(result.final_url) if result else None,
            "content_type": result.content_type if result else None,
            "bytes": len(result.body) if result and result.body else 0,
            "duration_ms": result.elapsed_ms if result else None, "outcome": "failed", "error": None,
            "error_detail": None, "fetched_at": result.fetched_at if result else datetime.now(UTC)}


def build_doc(entry: FeedEntry, result: FetchResult | None, settings: Settings
              ) -> tuple[Document | None, dict[str, Any]]:
    """Extract one page (or fall back to the feed summary): its document and its `page_fetches` row.

    The document is None only when there is no text at all to keep. Never raises: an unexpected error while
    extracting is the page's `internal_error`, and the feed summary is kept as for any failed page.
    """
    page = page_row(entry, result)
    try:
        found, reason = _extract(entry, result, settings)
    except Exception as exc:
        logger.exception("page %s: unexpected error while extracting", entry_url(entry))
        found, reason = None, f"{INTERNAL_ERROR}: {describe(exc)}"
    try:
        doc = _document(entry, result, found, reason, settings)
    except Exception as exc:
        logger.exception("page %s: unexpected error while building its document", entry_url(entry))
        doc, found, reason = None, None, f"{INTERNAL_ERROR}: {describe(exc)}"
    if found is not None and doc is not None:
        page["outcome"] = "extracted"
    else:
        page["error"], _, page["error_detail"] = (reason or "").partition(": ")
        page["outcome"] = "fallback" if doc is not None else "failed"
    return doc, page


def _extract(entry: FeedEntry, result: FetchResult | None, settings: Settings
             ) -> tuple[extract.Extracted | None, str | None]:
    """The page's extracted article, or None and why (as `code: detail`)."""
    if result is None:
        return None, "no_link: the entry has no article link"
    if not result.ok:
        return None, f"{result.error}: {result.detail}"
    if result.content_type not in _HTML_TYPES:
        return None, f"wrong_content_type: {result.content_type} is not a web page"
    failpoint("extract", result.final_url)
    found = extract.extract(result.body or b"", result.final_url, settings.extract)
    if found is None:
        return None, "empty_extraction: trafilatura found no article text"
    summary = entry.summary or ""
    if len(found.text) < settings.extract.min_text_chars and len(summary) > len(found.text):
        return None, f"short_extraction: {len(found.text)} characters, under min_text_chars"
    return found, None


def plausible_date(published: datetime | None, fetched_at: datetime) -> datetime | None:
    """A feed's date for an entry, or None when it lies more than FUTURE_SLACK after the page was fetched or
    before EARLIEST_PUBLISHED (a placeholder such as "0001-01-01").

    A feed may date an entry in the future: a wrong year, a local time labelled UTC, a post scheduled and listed
    early. Kept, it would be the article's publication day, and the report's windows (the week of surges, the
    last 30 days per feed) end on the latest day stored: one such entry would move them all to its day. The page's
    own date is used instead when it has one (trafilatura takes none past today), else the fetch day."""
    if published is not None and not EARLIEST_PUBLISHED <= published <= fetched_at + FUTURE_SLACK:
        return None
    return published


def _document(entry: FeedEntry, result: FetchResult | None, found: extract.Extracted | None, reason: str | None,
              settings: Settings) -> Document | None:
    text = found.text if found else (entry.summary or "")
    if not text:
        return None
    fetched_at = result.fetched_at if result else datetime.now(UTC)
    published_at = plausible_date(entry.published_at, fetched_at)
    published_source = "feed" if published_at else None
    if published_at is None and found and found.published:
        try:
            published_at = datetime.combine(date.fromisoformat(found.published[:10]), datetime.min.time(), UTC)
            published_source = "page"
        except ValueError:
            pass
    page = result.body if result is not None and result.ok else None
    flags = quality.assess(page, text, found.title if found else entry.title)
    raw = None
    if settings.warehouse.keep_raw_html and result is not None and result.ok and result.body:
        raw = rawcodec.compress(result.body)  # here in the worker, once per page
    return Document(
        url=entry_url(entry), link=entry.url, feed=entry.feed, entry_guid=entry.guid,
        title=(found.title if found else None) or entry.title,
        author=(found.author if found else None) or entry.author,
        published_at=published_at, published_source=published_source,
        fetched_at=fetched_at,
        # The page's language, else the feed's, else identified from the text here in the worker, so that
        # routing to an NER pipeline (flows/text/entities.py `route`) needs no detection in the parent.
        language=language_tag(found.language if found else None)
        or _feed_language(settings, entry.feed) or entities.detect_language(text),
        site_name=found.site_name if found else None,
        canonical_url=found.canonical_url if found else None,
        final_url=redact(result.final_url) if result else None, http_status=result.status if result else None,
        text=text, body_source="extracted" if found else "feed_summary",
        fallback_reason=None if found else reason,
        extractor=extract.EXTRACTOR if found else None,
        extractor_version=extract.EXTRACTOR_VERSION if found else None,
        extractor_options=json.dumps({**extract.extractor_options(settings.extract), "pass": found.method})
        if found else None,
        raw_html=raw, access=flags.access, is_teaser=flags.is_teaser, is_consent_page=flags.is_consent_page,
        **signature_fields(text, settings.dedup),
    )


def build_docs(pairs: list[tuple[FeedEntry, FetchResult | None]], settings: Settings
               ) -> list[tuple[Document | None, dict[str, Any]]]:
    """Extract and sign a chunk of pages (runs in a worker process)."""
    return [build_doc(entry, result, settings) for entry, result in pairs]


def signature_fields(text: str, settings: DedupSettings) -> dict[str, Any]:
    """The dedup signature of a text, as Document fields."""
    sig = dedup.signature(text, settings)
    return {"text_hash": sig.text_hash, "shingles": sig.shingles.view("int64").tolist(),
            "buckets": sig.buckets.tolist(), "samples": sig.samples.tolist()}


def seed_doc(seed: Seed, settings: Settings) -> Document:
    failpoint("seed", seed.name)
    return Document(
        url=seed.url, title=seed.text.split("\n", 1)[0][:200],
        published_at=datetime.combine(seed.published, datetime.min.time(), UTC), published_source="seed",
        text=seed.text, body_source="seed", is_seed=True, seed_file=seed.name, seed_file_hash=seed.file_hash,
        # A seed is an article someone chose to keep: free, whole, never a consent page.
        access=quality.FREE, is_teaser=False, is_consent_page=False,
        **signature_fields(seed.text, settings.dedup),
    )


# ---------------------------------------------------------------- entities

CONSENT_SKIP = "consent page"  # the ner_skip_reason of a cookie or consent notice stored in place of an article


def ner_plan(text: str, language: str | None, feed: str | None, settings: Settings, *,
             consent_page: bool | None = False) -> tuple[str | None, str | None]:
    """The spaCy pipeline that tags this text, or None and why it is not tagged."""
    if not text.strip():
        return None, "empty text"
    if consent_page:
        return None, CONSENT_SKIP  # its entities would be the consent vendor's, counted as news
    return entities.route(language, _feed_language(settings, feed), text, settings.entities)


def _feed_language(settings: Settings, feed: str | None) -> str | None:
    return next((f.language for f in settings.feeds if f.name == feed), None)


def tag_texts(items: list[tuple[str, str]], settings: Settings) -> list[tuple[list[dict[str, Any]], str | None,
                                                                           str | None]]:
    """(mentions, pipeline version, skip reason) of each (text, pipeline name); runs in a worker process.

    A chunk the tagger fails on is tagged again text by text, so one bad text costs only its own entities.
    """
    try:
        return _tag(items, settings)
    except Exception:
        logger.exception("tagging a chunk failed; tagging its texts one by one")
    out: list[tuple[list[dict[str, Any]], str | None, str | None]] = []
    for item in items:
        try:
            out += _tag([item], settings)
        except Exception as exc:
            logger.exception("tagging one text with %s failed", item[1])
            out.append(([], None, f"{INTERNAL_ERROR}: {describe(exc)}"))
    return out


def _tag(items: list[tuple[str, str]], settings: Settings) -> list[tuple[list[dict[str, Any]], str | None, None]]:
    for text, _name in items:
        failpoint("tag", text)
    return [([vars(m) for m in ms], version, None) for ms, version in entities.tag_routed(items, settings.entities)]


def plan_tagging(docs: list[Document], settings: Settings) -> list[list[tuple[Document, str]]]:
    """Chunks of (document, pipeline) to tag; documents that will not be tagged get their reason now."""
    todo: list[tuple[Document, str]] = []
    for doc in docs:
        name, reason = ner_plan(doc.text, doc.language, doc.feed, settings, consent_page=doc.is_consent_page)
        if name is None:
            doc.ner_skip_reason = reason
        else:
            todo.append((doc, name))
    todo.sort(key=lambda p: p[1])  # one pipeline per chunk where possible
    return [todo[i:i + NER_CHUNK] for i in range(0, len(todo), NER_CHUNK)]


def apply_tags(chunk: list[tuple[Document, str]], results: list[tuple[list[dict[str, Any]], str | None, str | None]]
               ) -> None:
    for (doc, _name), (mentions, version, reason) in zip(chunk, results, strict=True):
        doc.mentions, doc.ner_pipeline, doc.ner_skip_reason = mentions, version, reason


def tag_documents(pool: Executor, docs: list[Document], settings: Settings) -> None:
    """Tag documents in place, in chunks spread over the pool."""
    chunks = plan_tagging(docs, settings)
    futures = [pool.submit(tag_texts, [(d.text, name) for d, name in chunk], settings) for chunk in chunks]
    for chunk, future in zip(chunks, futures, strict=True):
        apply_tags(chunk, future.result())
