"""Every benchmark runs as `python -m benchmarks.<name>`: importing the package turns Prefect's telemetry off before
Prefect is imported, so a Prefect server a benchmark starts sends nothing and looks up no name outside the machine.

Covers: none (benchmarks/__init__.py is not a module of flows/)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = ("import importlib, sys; importlib.import_module(sys.argv[1]); "
         "from prefect.settings import get_current_settings as s; "
         "print(s().server.analytics_enabled, __import__('os').environ.get('DO_NOT_TRACK'))")


@pytest.mark.parametrize("module", ["benchmarks.quietyear", "benchmarks.yearstep", "benchmarks.bench_quiet"])
def test_a_benchmark_starts_with_prefect_telemetry_off(module: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "DO_NOT_TRACK"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", PROBE, module], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "1"], done.stdout
