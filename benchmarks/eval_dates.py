"""Publication dates: on what share of articles the pipeline has one, and from which source.

The pipeline takes the feed entry's date first and the page's (trafilatura/htmldate) otherwise. Feed dates are
counted over the saved news and real-world feeds of the feeds corpus; page dates over the fundus pages, checked
for plausibility against each page's crawl date.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from benchmarks.corpora import corpora_root, fundus_pages
from benchmarks.machine import table
from flows.core.sections import ExtractSettings
from flows.feeds.parse import parse_feed
from flows.text import extract


def _file_class(manifest: dict, rel: str) -> str:
    if rel in manifest["files"]:
        return manifest["files"][rel]
    for ext, cls in manifest.get("ext_class", {}).items():
        if rel.endswith(ext):
            return cls
    return manifest["sources"][rel.split("/", 1)[0]]["default_class"]


def feed_dates() -> tuple[int, int, int]:
    """(feeds, entries, entries with a date) over the corpus's news and real-world feeds."""
    root = corpora_root() / "feeds"
    manifest = json.loads((root / "MANIFEST.json").read_text())
    feeds = entries = dated = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "MANIFEST.json"):
        rel = path.relative_to(root).as_posix()
        if _file_class(manifest, rel) not in ("news", "real"):
            continue
        parsed = parse_feed(path.read_bytes(), "http://127.0.0.1/feed", rel)
        if parsed.error or not parsed.entries:
            continue
        feeds += 1
        entries += len(parsed.entries)
        dated += sum(1 for e in parsed.entries if e.published_at is not None)
    return feeds, entries, dated


def page_dates() -> list[tuple[str, str | None, date]]:
    """(language, page date or None, crawl date) for each fundus page."""
    settings = ExtractSettings()
    manifest = {json.loads(line)["id"]: json.loads(line)
                for line in (corpora_root() / "extraction" / "fundus" / "manifest.jsonl").read_text().splitlines()}
    out = []
    for page in fundus_pages():
        found = extract.extract(page.html, page.url, settings)
        crawled = datetime.fromisoformat(manifest[page.id]["crawl_date"]).date()
        out.append((page.lang, found.published if found else None, crawled))
    return out


def section() -> str:
    feeds, entries, dated = feed_dates()
    pages = page_dates()

    def share(rows: list[tuple[str, str | None, date]]) -> list[object]:
        with_date = [r for r in rows if r[1]]
        plausible = [r for r in with_date if date.fromisoformat(r[1][:10]) <= r[2]]
        return [len(rows), len(with_date), f"{len(with_date) / len(rows):.1%}",
                f"{len(plausible) / len(with_date):.1%}" if with_date else "-"]

    out = "## Publication dates\n\n"
    out += ("Pipeline rule: the feed entry's date, else the date trafilatura (htmldate) finds on the page, else none "
            "(`articles.published_source` = feed | page | null).\n\n")
    out += table(["source", "items", "with a date", "share"],
                 [["feed entries (feeds corpus, news + real-world feeds: "
                   f"{feeds} feeds)", entries, dated, f"{dated / entries:.1%}" if entries else "-"]])
    out += "\n"
    out += table(["page date (fundus pages)", "pages", "with a date", "share", "not after the crawl date"],
                 [["all", *share(pages)], ["English", *share([r for r in pages if r[0] == "en"])]])
    out += ("\nAn article lacks a date only when both fail: with feeds carrying dates on the share above and pages "
            "on theirs, and the two failing independently, about "
            f"{(1 - dated / max(entries, 1)) * (1 - len([r for r in pages if r[1]]) / len(pages)):.2%} "
            "of articles would have none.\n")
    return out
