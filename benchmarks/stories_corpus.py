"""The items of the story evaluation: real headlines we did not write, read by reference from a git snapshot.

The source is the public repository saswatpatra/gnews, a bot that saved Google News's US "Top stories" feed six
times a day as markdown (one `- headline - Outlet` line per entry). The headlines are the publishers' text and the
repository ships no licence, so they stay outside this repository: benchmarks/data/stories/items.csv keeps, for
each item, its key, the snapshot file it was first seen in (at a pinned commit) and the sha256 of its headline line,
so a changed or missing snapshot is detected instead of silently scoring other text.

The snapshot is read from NEWSFLOW_STORIES_REPO (default /work/.mirror/saswatpatra+gnews/repo, a bare git
directory); `git clone --bare https://github.com/saswatpatra/gnews` gives one.
"""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

DATA = Path(__file__).parent / "data" / "stories"
T = TypeVar("T")
REPO = "saswatpatra/gnews"
COMMIT = "364aafa31d3e5c579648c417b62657d7b2f6131d"
DEFAULT_MIRROR = "/work/.mirror/saswatpatra+gnews/repo"


class CorpusMissingError(RuntimeError):
    """The snapshot the labels refer to is not on this machine (or differs from the one labelled)."""


@dataclass(frozen=True)
class Headline:
    key: str          # sha256 of the headline line, first 16 hex digits
    title: str        # the headline without its " - Outlet" suffix
    outlet: str
    first_seen: datetime
    path: str         # the snapshot file it was first seen in
    line_sha256: str  # of the whole headline line, to detect a drift


def mirror() -> Path:
    return Path(os.environ.get("NEWSFLOW_STORIES_REPO", DEFAULT_MIRROR))


def git_output(where: Path, repo: str, commit: str, env: str, *args: str) -> str:
    """The output of `git --git-dir where args`; one clear CorpusMissingError (saying how to get the mirror, or
    which commit it lacks) when the bare mirror of `repo` is missing or lacks `commit`."""
    if not where.exists():
        raise CorpusMissingError(f"story corpus not found at {where}: clone it with `git clone --bare "
                                 f"https://github.com/{repo} {where}` (or set {env})")
    done = subprocess.run(["git", "--git-dir", str(where), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise CorpusMissingError(f"story corpus at {where} lacks commit {commit[:12]} ({done.stderr.strip()[:120]})")
    return done.stdout


def _git(*args: str) -> str:
    return git_output(mirror(), REPO, COMMIT, "NEWSFLOW_STORIES_REPO", *args)


def _top_lines(markdown: str) -> list[str]:
    """The `## Top` section's headline lines (the bot's other sections repeat the same feed)."""
    out, section = [], None
    for line in markdown.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif section == "Top" and line.startswith("- "):
            out.append(line[2:].strip())
    return out


def _when(path: str) -> datetime:
    stem = path.rsplit("/", 1)[-1].removesuffix(".md")  # 2026-01-05_12-43
    return datetime.strptime(stem, "%Y-%m-%d_%H-%M").replace(tzinfo=UTC)


def headline_key(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()[:16]


def scan(first_day: str, last_day: str) -> list[Headline]:
    """Every distinct headline of the snapshots from first_day to last_day (ISO dates), at its first sighting."""
    paths = sorted(p for p in _git("ls-tree", "-r", "--name-only", COMMIT, "news/").split()
                   if first_day <= p[5:15] <= last_day)
    seen: dict[str, Headline] = {}
    for path in paths:
        for line in _top_lines(_git("show", f"{COMMIT}:{path}")):
            key = headline_key(line)
            if key in seen:
                continue
            title, _, outlet = line.rpartition(" - ")
            if not title:  # no outlet suffix: keep the line whole
                title, outlet = line, "unknown"
            seen[key] = Headline(key, title.strip(), outlet.strip(), _when(path), path,
                                 hashlib.sha256(line.encode("utf-8")).hexdigest())
    return list(seen.values())


def load_items() -> list[Headline]:
    """The labelled items, read from the snapshot and checked against items.csv (one clear error on a drift)."""
    with (DATA / "items.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    first = min(r["first_seen"][:10] for r in rows)
    last = max(r["first_seen"][:10] for r in rows)
    found = {h.key: h for h in scan(first, last)}
    return checked(rows, found, lambda h, row: h.line_sha256 == row["line_sha256"] and h.path == row["path"],
                   REPO, COMMIT)


def checked(rows: list[dict[str, str]], found: Mapping[str, T], same: Callable[[T, dict[str, str]], bool],
            repo: str, commit: str) -> list[T]:
    """The items of items.csv's `rows` (by key) in `found`, in the rows' order; one CorpusMissingError naming the
    first when any is missing or not `same` as its row (the mirror is not the commit that was labelled)."""
    out, drift = [], []
    for row in rows:
        item = found.get(row["key"])
        if item is None or not same(item, row):
            drift.append(row["key"])
            continue
        out.append(item)
    if drift:
        raise CorpusMissingError(f"{len(drift)} story items differ from items.csv (first: {drift[0]}); "
                                 f"the snapshot is not commit {commit[:12]} of {repo}")
    return out
