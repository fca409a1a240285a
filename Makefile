# Two commands on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
PORT ?= 8080
HOST ?= 127.0.0.1
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "groupcloud needs Python >= 3.11; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)  ## migrate + seed the embedded SQLite database, then serve the API (PORT=8080)
	$(BIN)/groupcloud db upgrade
	$(BIN)/groupcloud seed demo --if-empty
	$(BIN)/groupcloud serve --host $(HOST) --port $(PORT)

test: $(STAMP) lint typecheck  ## lint, type-check and run the whole test suite (SQLite + PostgreSQL)
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src tests benchmarks

bench: $(STAMP)  ## claim benchmark vs OpenStack Placement at 1,000 hosts
	$(BIN)/python benchmarks/compare_peer.py --hosts 1000 --claims 200

clean:
	rm -rf $(VENV) .groupcloud .mypy_cache .ruff_cache .pytest_cache
