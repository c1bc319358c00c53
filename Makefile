# newsflow: everything a fresh machine with Python 3.11+ and make needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo ingest test lint bench eval clean

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

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

eval: $(STAMP)
	$(BIN)/python -m benchmarks.evaluate

clean:
	rm -rf $(VENV) warehouse/*.duckdb warehouse/*.wal warehouse/staging warehouse/snapshots warehouse/demo.*
