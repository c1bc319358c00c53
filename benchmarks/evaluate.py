"""`make eval`: extraction by publisher, dedup precision/recall, publication dates, stories on real headlines.
Tables go to benchmarks/results/.

`python -m benchmarks.evaluate extraction` (or dedup, dates, stories) runs one section. The extraction section is
also written to a dated file, benchmarks/results/<date>-extraction-by-publisher.md; the stories section to
benchmarks/results/stories_eval.md.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import eval_dates, eval_dedup, eval_grouped, eval_stories
from benchmarks.machine import header

RESULTS = Path(__file__).parent / "results"
SECTIONS = {"extraction": eval_grouped.section, "dedup": eval_dedup.section, "dates": eval_dates.section,
            "stories": eval_stories.section}


def main(names: list[str]) -> None:
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        print(f"usage: python -m benchmarks.evaluate [{'|'.join(SECTIONS)}] ... (unknown: {', '.join(unknown)})",
              file=sys.stderr)
        raise SystemExit(2)
    sections = [header("newsflow evaluation")]
    extraction_header = header("extraction by publisher")  # the commit and time the run started at
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in names or list(SECTIONS):
        start = time.perf_counter()
        print(f"eval: {name} ...", file=sys.stderr, flush=True)
        text = SECTIONS[name]()
        sections.append(text)
        if name == "extraction":
            day = datetime.now(UTC).date().isoformat()
            (RESULTS / f"{day}-extraction-by-publisher.md").write_text(f"{extraction_header}\n{text}")
        print(f"eval: {name} done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    text = "\n".join(sections)
    if not names:
        (RESULTS / "evaluation.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
