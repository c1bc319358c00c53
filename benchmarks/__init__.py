"""Benchmarks (speed, memory) and evaluations (quality) of newsflow: `make bench`, `make eval`."""

import os

# Before any benchmark module imports Prefect (each runs as `python -m benchmarks.<name>`, which imports this package
# first): a Prefect server it starts sends no telemetry, and no name lookup leaves the machine (a quiet-run harness's
# server was seen trying one).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
