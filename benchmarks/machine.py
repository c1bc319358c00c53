"""The machine, versions and date written at the top of every results table."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version

_PACKAGES = ("trafilatura", "spacy", "duckdb", "prefect", "pyarrow", "httpx", "numpy")


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def header(title: str) -> str:
    """A markdown heading plus the machine, versions, commit and date."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(f"{p} {version(p)}" for p in _PACKAGES)
    return (
        f"# {title}\n\n"
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n"
        f"- machine: {os.cpu_count()} cores ({cpu_model()}), {mem:.0f} GiB RAM, {platform.platform()}\n"
        f"- python {platform.python_version()}; {versions}\n"
        f"- commit: {commit()}\n"
    )


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A markdown table; floats shown with 3 significant decimals."""
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
