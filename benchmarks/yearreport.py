"""The markdown of the year benchmark (benchmarks/bench_year.py): one table of every per-run step by warehouse
size, its ratio largest / smallest and whether the issue-23 target is met, then the details."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

from benchmarks.machine import header, table

RATIO = 1.5  # every per-run step at the largest size within 1.5x of the smallest
NOISE_S = 0.05  # a step that grows by less than this is met whatever its ratio (timer noise on a shared machine)
QUIET_S = 3.0

Pick = Callable[[dict[str, Any]], float | None]


def _median(rounds: list[dict[str, Any]], pick: Pick) -> float | None:
    values = []
    for r in rounds:
        try:
            v = pick(r)
        except (KeyError, IndexError, TypeError):
            v = None
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            values.append(float(v))
    return statistics.median(values) if values else None


def _step(kind: str, name: str, i: int | None = None) -> Pick:
    return lambda r: (r[kind][i] if i is not None else r[kind])["steps"].get(name, 0.0)


def _tree(kind: str, role: str, key: str, i: int | None = None) -> Pick:
    return lambda r: (r[kind][i] if i is not None else r[kind])["tree"].get(role, {}).get(key)


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    return f"{v:.2f} s" if unit == "s" else f"{v:,.0f} {unit}" if abs(v) >= 100 else f"{v:.1f} {unit}"


def _row(label: str, cells: list[float | None], unit: str, judge: str) -> list[object]:
    first, last = cells[0], cells[-1]
    ratio = last / first if first and last is not None and first > 0 else None
    if judge == "ratio":
        met = None if ratio is None else ratio <= RATIO or (unit == "s" and last - first < NOISE_S)  # type: ignore[operator]
    elif judge == "quiet":
        met = None if last is None else last < QUIET_S
    else:
        met = None
    verdict = "-" if met is None else "yes" if met else "**no**"
    return [label, *[_fmt(c, unit) for c in cells], "-" if ratio is None else f"{ratio:.2f}", verdict]


STEPS = ["feeds", "load (stage + load + checkpoint)", "dedup decision", "lookup cache refresh", "checks",
         "end reads (report rows, alerts)", "snapshot publish", "search refresh", "report page (html_path)",
         "artifacts + alerts", "finish (row, checks, snapshot, search, page)", "start (hints, dead runs)"]


def main_rows(rounds: dict[int, list[dict[str, Any]]], sizes: list[int]) -> list[list[object]]:
    def cells(pick: Pick) -> list[float | None]:
        return [_median(rounds[n], pick) for n in sizes]

    rows = [
        _row("quiet run (100 x 304), flow wall, snapshot current", cells(lambda r: r["quiet"][0]["wall"]), "s",
             "quiet"),
        _row("quiet run after a quiet run, flow wall", cells(lambda r: r["quiet"][1]["wall"]), "s", "quiet"),
    ]
    rows += [_row(f"... quiet run: {s}", cells(_step("quiet", s, 1)), "s", "ratio")
             for s in ("checks", "snapshot publish", "end reads (report rows, alerts)", "artifacts + alerts")]
    rows.append(_row("run loading 128 new articles, flow wall", cells(lambda r: r["load"]["wall"]), "s", "ratio"))
    rows += [_row(f"... {s}", cells(_step("load", s)), "s", "ratio") for s in STEPS]
    rows.append(_row("first load after the lookup cache is deleted, flow wall", cells(lambda r: r["keyless"]["wall"]),
                     "s", "ratio"))
    rows.append(_row("... its load step", cells(_step("keyless", "load (stage + load + checkpoint)")), "s", "ratio"))
    rows.append(_row("... its lookup cache refresh", cells(_step("keyless", "lookup cache refresh")), "s", "ratio"))
    rows += [
        _row("peak memory of the ingest process (load run)", cells(_tree("load", "parent", "peak_mib_max")), "MiB",
             "ratio"),
        _row("... after the lookup cache is deleted", cells(_tree("keyless", "parent", "peak_mib_max")), "MiB",
             "ratio"),
        _row("... quiet run", cells(_tree("quiet", "parent", "peak_mib_max", 1)), "MiB", "ratio"),
        _row("... of it anonymous, sampled (load run)", cells(_tree("load", "parent", "anon_mib_max")), "MiB",
             "ratio"),
        _row("... of it anonymous, sampled (after the lookup cache is deleted)",
             cells(_tree("keyless", "parent", "anon_mib_max")), "MiB", "ratio"),
        _row("... pool workers, the largest", cells(_tree("load", "pool workers", "peak_mib_max")), "MiB", "ratio"),
        _row("bytes written by the load run (ingest process, write_bytes)",
             cells(_tree("load", "parent", "written_mib")), "MiB", "-"),
        _row("... per new article", cells(lambda r: r["load"]["tree"]["parent"]["written_mib"] * 1024
                                          / max(1, r["load"]["summary"].get("articles_new", 0))), "KiB", "ratio"),
        _row("... files new or rewritten in the warehouse folder", cells(lambda r: r["load"]["changed_mib"]), "MiB",
             "ratio"),
        _row("bytes written by a quiet run (after a quiet run)", cells(_tree("quiet", "parent", "written_mib", 1)),
             "MiB", "ratio"),
        _row("warehouse file per 1,000 articles", cells(lambda r: r["disk"].get("warehouse", 0) * 1000 / r["n"]),
             "MiB", "-"),
        _row("everything beside it per 1,000 articles",
             cells(lambda r: (sum(r["disk"].values()) - r["disk"].get("warehouse", 0)) * 1000 / r["n"]), "MiB", "-"),
    ]
    beside = cells(lambda r: (sum(r["disk"].values()) - r["disk"].get("warehouse", 0)) / r["disk"]["warehouse"])
    rows.append(["beside / warehouse (target < 1)", *[f"{b:.2f}" if b is not None else "-" for b in beside], "-",
                 "yes" if all(b is not None and b < 1 for b in beside) else "**no**"])
    return rows


def command_rows(rounds: dict[int, list[dict[str, Any]]], sizes: list[int]) -> list[list[object]]:
    names: list[str] = []
    for n in sizes:
        names += [c for c in rounds[n][0].get("commands", {}) if c not in names]
    rows = []
    for name in names:
        cells = []
        for n in sizes:
            c = rounds[n][0].get("commands", {}).get(name)
            cells.append("-" if c is None else f"{c['wall']:.2f} s, {c['peak_mib']:,.0f} MiB"
                         + ("" if c["rc"] == 0 else f", **exit {c['rc']}**"))
        works = all(rounds[n][0].get("commands", {}).get(name, {}).get("rc") == 0 for n in sizes)
        rows.append([f"`{name}`", *cells, "yes" if works else "**no**"])
    return rows


def report(sizes: list[int], rounds: dict[int, list[dict[str, Any]]], fills: dict[int, dict[str, float]],
           repeat: int, seconds: float | None) -> str:
    for n in sizes:
        for r in rounds[n]:
            r["n"] = n
    cols = [f"{n:,}" for n in sizes]
    out = header("A year in a benchmark (issue 23)") + "\n"
    out += (f"Warehouses in a year's shape (benchmarks/yearfill.py: 3,000 articles a day from 100 feeds, 96 runs a "
            "day, ~20 entity links and ~80 dedup index rows an article, ~10% copies, raw pages for the last 90 "
            f"days), {repeat} round(s) of fresh copies, sizes interleaved; medians. Ratio: largest / smallest. "
            f"Target: every per-run step within {RATIO}x (or within {NOISE_S} s), a quiet run under {QUIET_S:.0f} "
            "s, memory flat, bytes written per new article flat, everything beside the warehouse smaller than it.\n"
            "Command: `NEWSFLOW_BENCH_YEAR_SCALES=" + ",".join("small" if n == 2000 else str(n) for n in sizes)
            + f" NEWSFLOW_BENCH_REPEAT={repeat} .venv/bin/python -m benchmarks.run year`\n\n")
    out += table(["per-run step (articles stored)", *cols, "ratio", "target met"], main_rows(rounds, sizes))
    out += "\n## Commands at each size (first round; wall, peak resident memory)\n\n"
    out += table(["command", *cols, "works at every size"], command_rows(rounds, sizes))
    if any(rounds[n][0].get("commands_remeasured") for n in sizes):
        out += ("\nMeasured again after the rounds, each size on a fresh copy of its cache "
                "(`python -m benchmarks.bench_year --commands`).\n")
    out += "\n## Disk by kind, after the rounds' runs (MiB)\n\n"
    kinds = sorted({k for n in sizes for k in rounds[n][0]["disk"]})
    out += table(["kind", *cols], [[k, *[round(rounds[n][0]["disk"].get(k, 0.0)) for n in sizes]] for k in kinds])
    out += "\n## Preparation (s; once per cache, not per round)\n\n"
    parts = sorted({p for n in sizes for p in fills[n]})
    out += table(["part", *cols], [[p, *[round(fills[n].get(p, 0.0)) for n in sizes]] for p in parts]
                 + [["copy of the cache (median per round)",
                     *[round(_median(rounds[n], lambda r: r["copy_s"]) or 0) for n in sizes]],
                    ["its writeback to disk before the runs (`sync`, median per round)",
                     *[round(_median(rounds[n], lambda r: r.get("sync_s", 0.0)) or 0) for n in sizes]],
                    ["its lookup cache read into memory (median per round)",
                     *[round(_median(rounds[n], lambda r: r.get("warm_s", 0.0)) or 0) for n in sizes]]])
    absent = sorted({a for n in sizes for r in rounds[n] for a in r["load"].get("absent", [])})
    if absent:
        out += f"\nSteps this version does not have (not timed): {', '.join(absent)}.\n"
    if seconds is not None:
        out += f"\nTotal time of the section {seconds:.0f} s.\n"
    return out
