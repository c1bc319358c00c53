"""Where the test suite's CPU goes: a pytest plugin that records, per test, the CPU seconds of the pytest process
and every process it started (servers, subprocesses, pool workers), and the wall seconds; then a summary by file.

    rm -rf /tmp/suite-cpu; NEWSFLOW_SUITE_CPU=/tmp/suite-cpu .venv/bin/pytest -q -p benchmarks.suite_cpu \
        -n 2 --dist loadscope
    python -m benchmarks.suite_cpu /tmp/suite-cpu            # files by CPU, then the 25 costliest tests

The suite's budget (15 minutes on 2 cores) is spent in CPU more than in waiting: on 2 cores, two pytest workers
keep them ~155 % busy, so a test's CPU is what it costs the suite. A process started in one test and still running
in the next (a module's Prefect server) is counted in the test that is running. Not a test: nothing here runs
unless it is named with `-p`.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

ENV = "NEWSFLOW_SUITE_CPU"


def _cpu() -> float:
    """CPU seconds of this process, its reaped children and every live descendant (with their reaped children)."""
    own, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    for proc in psutil.Process().children(recursive=True):
        try:
            t = proc.cpu_times()
        except psutil.Error:  # ended meanwhile: its time is in its parent's reaped children, or lost
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    cpu, wall = _cpu(), time.monotonic()
    yield
    folder = Path(os.environ.get(ENV, "suite-cpu"))
    folder.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with (folder / f"{worker}.tsv").open("a") as out:
        out.write(f"{item.nodeid}\t{_cpu() - cpu:.2f}\t{time.monotonic() - wall:.2f}\n")


def summary(folder: Path, top: int = 25) -> str:
    cpu: Counter[str] = Counter()
    wall: Counter[str] = Counter()
    tests = []
    for path in sorted(folder.glob("*.tsv")):
        for line in path.read_text().splitlines():
            node, c, w = line.split("\t")
            name = node.split("::")[0]
            cpu[name] += float(c)
            wall[name] += float(w)
            tests.append((float(c), float(w), node))
    lines = [f"{len(tests)} tests: {sum(cpu.values()):.0f} s CPU, {sum(wall.values()):.0f} s wall in tests",
             "", "| file | CPU s | wall s |", "|---|---|---|"]
    lines += [f"| {name} | {c:.1f} | {wall[name]:.1f} |" for name, c in cpu.most_common()]
    lines += ["", "| test | CPU s | wall s |", "|---|---|---|"]
    lines += [f"| {node} | {c:.1f} | {w:.1f} |" for c, w, node in sorted(tests, reverse=True)[:top]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1] if len(sys.argv) > 1 else "suite-cpu")))
