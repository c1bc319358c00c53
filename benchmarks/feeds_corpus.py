"""Robustness run: every file of the shared feed corpus served from 127.0.0.1, fetched and parsed like a feed.

Counts what was parsed and what was recorded with a reason (never a crash or a hang), per MANIFEST class, and
measures peak memory of the fetcher against a 1 GB gzip bomb and a 50 MB body from the fault server.

    .venv/bin/python benchmarks/feeds_corpus.py            # writes benchmarks/results/feeds_corpus.md

Network: the corpus and the fault server are served on 127.0.0.1 only, and only that address is allowed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from flows.core.settings import FetchSettings  # noqa: E402
from flows.feeds.parse import parse_feed  # noqa: E402
from flows.ops.localserver import LocalServer  # noqa: E402
from flows.web.fetch import fetch, is_feed_type, make_client  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "feeds"
RESULTS = ROOT / "benchmarks" / "results" / "feeds_corpus.md"
SETTINGS = FetchSettings(connect_timeout=2, read_timeout=5, total_timeout=10, allowed_networks=("127.0.0.1/32",))


def classes(corpus: Path) -> dict[str, str]:
    manifest = json.loads((corpus / "MANIFEST.json").read_text())
    out = {}
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and p.name != "MANIFEST.json"):
        rel = path.relative_to(corpus).as_posix()
        source = rel.split("/", 1)[0]
        out[rel] = manifest["files"].get(rel) or manifest["ext_class"].get(path.suffix) or \
            manifest["sources"][source]["default_class"]
    return out


def run_one(client, server: LocalServer, rel: str) -> dict:
    start = time.monotonic()
    try:
        result = fetch(client, server.url("/" + quote(rel)), SETTINGS, max_bytes=SETTINGS.max_feed_bytes,
                       accept_type=is_feed_type)
        if result.error:
            return {"outcome": "fetch_error", "reason": result.error, "seconds": time.monotonic() - start}
        parsed = parse_feed(result.body or b"", result.final_url, rel)
    except Exception as exc:  # a crash is what this run looks for: count it, never hide it
        return {"outcome": "crash", "reason": f"{type(exc).__name__}: {exc}", "seconds": time.monotonic() - start}
    seconds = time.monotonic() - start
    if parsed.error:
        return {"outcome": "rejected", "reason": parsed.error.split(";")[0][:60], "seconds": seconds}
    return {"outcome": "parsed" if parsed.entries else "parsed_empty", "entries": len(parsed.entries),
            "warning": bool(parsed.warning), "seconds": seconds}


def corpus_run(corpus: Path) -> tuple[dict[str, dict], float, float]:
    cls = classes(corpus)
    start = time.monotonic()
    with LocalServer(corpus) as server, make_client(SETTINGS) as client, ThreadPoolExecutor(4) as pool:
        rows = dict(zip(cls, pool.map(lambda rel: run_one(client, server, rel), cls), strict=True))
    for rel, row in rows.items():
        row["class"] = cls[rel]
    return rows, time.monotonic() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def limit_case(path: str) -> None:
    """Child process: fetch one fault-server path and print the result and this process's peak RSS."""
    from faultserver import FaultServer

    settings = FetchSettings(total_timeout=60, allowed_networks=("127.0.0.1/32",))
    with FaultServer(bomb_bytes=1_000_000_000, huge_bytes=50_000_000) as server, make_client(settings) as c:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.monotonic()
        r = fetch(c, server.url(path), settings, max_bytes=settings.max_feed_bytes)
        print(json.dumps({"path": path, "error": r.error, "detail": r.detail, "seconds": time.monotonic() - start,
                          "rss_before_mb": before,
                          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def limit_cases() -> list[dict]:
    out = []
    for path in ("/feeds/bomb", "/feeds/huge", "/feeds/huge-declared"):
        proc = subprocess.run([sys.executable, __file__, "--limit-case", path], capture_output=True, text=True,
                              check=True, timeout=300)
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def report(rows: dict[str, dict], seconds: float, peak: float, limits: list[dict]) -> str:
    outcomes = Counter(r["outcome"] for r in rows.values())
    by_class = Counter((r["class"], r["outcome"]) for r in rows.values())
    reasons = Counter(r["reason"] for r in rows.values() if "reason" in r)
    slowest = max(rows.items(), key=lambda kv: kv[1]["seconds"])
    lines = [
        "# Feed corpus robustness run", "",
        "`.venv/bin/python benchmarks/feeds_corpus.py` over `../shared/corpora/feeds` "
        f"({len(rows)} files), each served from 127.0.0.1 and run through `fetch` + `parse_feed`.", "",
        f"- wall time {seconds:.1f} s, 4 threads; slowest file {slowest[1]['seconds']:.2f} s ({slowest[0]})",
        f"- peak RSS of the whole run {peak:.0f} MB",
        f"- crashes: {outcomes['crash']}; hangs (over the {SETTINGS.total_timeout:g} s limit): "
        f"{sum(r['seconds'] > SETTINGS.total_timeout + 1 for r in rows.values())}", "",
        "| outcome | files |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(outcomes.items())],
        f"| parsed with a warning (bozo, encoding fix) | {sum(r.get('warning', False) for r in rows.values())} |",
        "", "| MANIFEST class | parsed | parsed_empty | rejected | fetch_error | crash |", "|---|---|---|---|---|---|",
        *[f"| {c} | " + " | ".join(str(by_class[(c, o)]) for o in
                                   ("parsed", "parsed_empty", "rejected", "fetch_error", "crash")) + " |"
          for c in sorted({r["class"] for r in rows.values()})],
        "", "| reason recorded | files |", "|---|---|", *[f"| {k} | {v} |" for k, v in reasons.most_common()],
        "", "## Limits: peak memory of the fetching process", "",
        "| case | error | seconds | RSS before (MB) | peak RSS (MB) |", "|---|---|---|---|---|",
        *[f"| {c['path']} | {c['error']} | {c['seconds']:.2f} | {c['rss_before_mb']:.0f} | {c['peak_rss_mb']:.0f} |"
          for c in limits],
        "", "The bomb expands to 1 GB and the huge body is 50 MB; the cap is max_feed_bytes = "
        f"{SETTINGS.max_feed_bytes:,} bytes after decompression.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--limit-case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.limit_case:
        limit_case(args.limit_case)
        return
    if not args.corpus.exists():
        sys.exit(f"{args.corpus}: corpus not found")
    limits = limit_cases()
    rows, seconds, peak = corpus_run(args.corpus)
    text = report(rows, seconds, peak, limits)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)
    crashes = [(k, v["reason"]) for k, v in rows.items() if v["outcome"] == "crash"]
    for rel, reason in crashes:
        print("CRASH", rel, reason)
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
