"""Benchmarks (speed, memory) and evaluations (quality) of newsflow: `make bench`, `make eval`."""
