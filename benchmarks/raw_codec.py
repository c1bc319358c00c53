"""The raw archive's compression level, chosen on some publishers' real pages and reported on the others.

Every stored article's page is compressed once, in the worker that fetched it, and kept for
`raw_html_retention_days` (flows/warehouse/rawcodec.py). On real pages that archive is the largest thing beside the
warehouse (about 61 KB a page at zstd level 1: some 16 GB for 90 days of a 100-feed deployment), so its level is a
trade of a worker's CPU against disk, measured here on the fundus pages of ../shared/corpora (read by path).

Split by publisher (a hash of its name), never page by page. The rule, fixed before measuring: on the tune
publishers, the level with the smallest archive among those whose compression costs at most `BUDGET` of the
CPU the same pages' extraction costs, both measured in this run (a worker extracts every page it compresses), or a
lower level whose archive is within `TIE` of it.
The report publishers then show what that level gives where it was not chosen.

    python -m benchmarks.raw_codec     # about a minute; writes benchmarks/results/raw_codec.md
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from benchmarks.corpora import Page, fundus_pages
from benchmarks.eval_grouped import publisher
from benchmarks.machine import header
from flows.core.settings import PROJECT_ROOT, Settings
from flows.text.extract import extract
from flows.warehouse import rawcodec

LEVELS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 12)
BUDGET = 0.05  # of the extraction's CPU
TIE = 0.02  # of the archive's size
REPEAT = 5
RESULT = PROJECT_ROOT / "benchmarks" / "results" / "raw_codec.md"


def split_of(page: Page) -> str:
    """tune or report, by a hash of the page's publisher, so no publisher is on both sides."""
    return "tune" if hashlib.blake2b(publisher(page).encode(), digest_size=4).digest()[0] % 2 else "report"


@dataclass(frozen=True)
class Level:
    level: int
    bytes: int
    compress_ms: float  # CPU per page, the least of REPEAT passes
    decompress_ms: float


def _cpu_ms(pages: Sequence[Page], work: Callable[[Page], object], repeat: int = REPEAT) -> float:
    """The least over `repeat` passes of one pass's process CPU per page, in ms: a shared machine only ever adds to
    a pass, so the least is the steadiest figure (a median flipped the choice between two levels from run to run)."""
    passes = []
    for _ in range(repeat):
        start = time.process_time()
        for p in pages:
            work(p)
        passes.append((time.process_time() - start) * 1000 / len(pages))
    return min(passes)


def measure(pages: Sequence[Page]) -> list[Level]:
    out = []
    for level in LEVELS:
        codec = pa.Codec("zstd", compression_level=level)
        blobs = [codec.compress(p.html, asbytes=True) for p in pages]
        compress_ms = _cpu_ms(pages, lambda p, codec=codec: codec.compress(p.html, asbytes=True))
        start = time.process_time()
        for _ in range(REPEAT):
            for blob in blobs:
                rawcodec.decode("zstd", blob)
        decompress_ms = (time.process_time() - start) * 1000 / len(blobs) / REPEAT
        out.append(Level(level, sum(map(len, blobs)), compress_ms, decompress_ms))
    return out


def extraction_ms(pages: Sequence[Page]) -> float:
    settings = Settings().extract
    return _cpu_ms(pages, lambda p: extract(p.html, p.url, settings), repeat=2)


def choose(levels: Sequence[Level], extract_ms: float) -> Level:
    """The smallest archive within the budget, or a lower level within TIE of its size: two neighbouring levels
    close to the budget otherwise trade places from run to run on timing noise alone."""
    within = [lv for lv in levels if lv.compress_ms <= BUDGET * extract_ms] or list(levels[:1])
    best = min(within, key=lambda lv: (lv.bytes, lv.level))
    return min((lv for lv in within if lv.bytes <= best.bytes * (1 + TIE)), key=lambda lv: lv.level)


def table(name: str, pages: Sequence[Page], levels: Sequence[Level], extract_ms: float, chosen: int) -> str:
    base = levels[0]
    rows = [f"**{name}**: {len(pages)} pages, {len({publisher(p) for p in pages})} publishers, "
            f"{sum(len(p.html) for p in pages) / 1e6:.1f} MB of HTML; extraction {extract_ms:.1f} ms CPU a page.\n",
            "| zstd level | archive | vs level 1 | KB a page | compress, ms CPU a page | share of extraction |"
            " decompress, ms a page |",
            "|---|---|---|---|---|---|---|"]
    for lv in levels:
        mark = " (chosen)" if lv.level == chosen else ""
        rows.append(f"| {lv.level}{mark} | {lv.bytes / 1e6:.2f} MB | {lv.bytes / base.bytes:.3f} | "
                    f"{lv.bytes / len(pages) / 1000:.1f} | {lv.compress_ms:.2f} | {lv.compress_ms / extract_ms:.1%} | "
                    f"{lv.decompress_ms:.2f} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    pages = list(fundus_pages())
    halves = {side: [p for p in pages if split_of(p) == side] for side in ("tune", "report")}
    measured = {side: (measure(ps), extraction_ms(ps)) for side, ps in halves.items()}
    chosen = choose(*measured["tune"])
    text = header("raw archive compression level") + "\n" + __doc__.split("\n\n", 1)[1].split("    python")[0]
    text += (f"Chosen on the tune publishers: **level {chosen.level}** (budget {BUDGET:.0%} of the extraction's CPU; "
             f"in force: level {rawcodec.LEVEL}).\n\n")
    for side in ("tune", "report"):
        text += table(side, halves[side], *measured[side], chosen.level) + "\n"
    text += "Command: `python -m benchmarks.raw_codec`\n"
    RESULT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
