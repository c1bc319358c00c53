"""A local news site for the speed benchmarks: variants of the English fundus pages and RSS feeds listing them,
written to a temp dir and served from 127.0.0.1 by a separate process (so serving does not share our GIL).

Each variant swaps about a third of the lower-case words of its page for other words of the corpus, so variants
are different articles to dedup (5-word shingles rarely survive) while extraction and NER see pages of the same
shape and size. Capitalised words, and so most entities, are kept.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from benchmarks.corpora import fundus_pages

_SCRIPT = re.compile(rb"(<(script|style)\b.*?</\2\s*>)", re.S | re.I)
_TEXT = re.compile(rb">([^<]+)<")
_LOWER = re.compile(rb"\b[a-z]{4,}\b")


@dataclass(frozen=True)
class Site:
    root: Path
    feeds: list[str]  # feed file names under feeds/
    pages: int


def _vary(html: bytes, rng: random.Random, vocab: list[bytes]) -> bytes:
    def words(m: re.Match[bytes]) -> bytes:
        return m.group(0) if rng.random() > 0.35 else rng.choice(vocab)

    def text(m: re.Match[bytes]) -> bytes:
        return b">" + _LOWER.sub(words, m.group(1)) + b"<"

    parts = _SCRIPT.split(html)
    out, i = [], 0
    while i < len(parts):
        out.append(_TEXT.sub(text, parts[i]))
        if i + 1 < len(parts):
            out.append(parts[i + 1])  # a script or style element, kept as is
        i += 3
    return b"".join(out)


def build(root: Path, *, variants: int, feeds: int, seed: int = 7) -> Site:
    """`variants` copies of each English fundus page, spread over `feeds` RSS feeds."""
    pages = list(fundus_pages(lang="en"))
    rng = random.Random(seed)
    vocab = sorted({w for p in pages for w in _LOWER.findall(p.body.encode())})
    (root / "pages").mkdir(parents=True, exist_ok=True)
    (root / "feeds").mkdir(parents=True, exist_ok=True)
    items: list[tuple[str, str, str]] = []
    for v in range(variants):
        for n, page in enumerate(pages):
            name = f"p{v:03d}-{n:03d}.html"
            (root / "pages" / name).write_bytes(_vary(page.html, rng, vocab))
            items.append((name, page.title, page.body[:300]))
    rng.shuffle(items)
    names = []
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for f in range(feeds):
        mine = items[f::feeds]
        entries = "".join(
            f"<item><title>{escape(t)}</title><link>{{{{BASE}}}}/pages/{n}</link><guid>{n}</guid>"
            f"<description>{escape(s)}</description>"
            f"<pubDate>{format_datetime(now - timedelta(minutes=i))}</pubDate></item>"
            for i, (n, t, s) in enumerate(mine))
        name = f"feed{f:03d}.xml"
        (root / "feeds" / name).write_text(
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>Bench {f}</title>'
            f"<link>{{{{BASE}}}}/</link><description>bench</description>{entries}</channel></rss>")
        names.append(name)
    return Site(root, names, len(items))


class Server:
    """flows.ops.localserver.LocalServer over `root`, in a child process; `base` is its http://127.0.0.1:PORT.

    With `hosts` = N the folder is served on N loopback addresses (127.0.0.2 ...): `bases` lists them, `base` is
    the first.
    """

    def __init__(self, root: Path, *, not_modified: bool = False, hosts: int = 0) -> None:
        self.root, self.not_modified, self.hosts = root, not_modified, hosts
        self.proc: subprocess.Popen[str] | None = None
        self.base = ""
        self.bases: list[str] = []

    def __enter__(self) -> Server:
        args = [sys.executable, "-m", "benchmarks.serve", str(self.root)] + (["--304"] if self.not_modified else [])
        args += ["--hosts", str(self.hosts)] if self.hosts else []
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        for _ in range(max(self.hosts, 1)):  # the child prints its base URLs once it listens
            line = self.proc.stdout.readline()
            if not line.startswith("http://127.0.0.") or time.monotonic() > deadline:
                raise RuntimeError(f"benchmark server did not start: {line!r}")
            self.bases.append(line.strip())
        self.base = self.bases[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
