# Every target that needs the environment depends on `install`, so each works on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# uv on PATH, else the uv that `make install` puts in python3's site-packages (run as a module,
# which works wherever pip installed it).
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PY := $(UV) run --frozen
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: help install browser test test-core faults lint format dev sim demo demo-ui ui-shots live bench up down

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install:  ## bootstrap uv (via pip) if missing, then install the locked dependencies, compiled to bytecode
	@if ! $(UV) --version >/dev/null 2>&1; then \
		echo "uv not found: installing it with pip"; \
		python3 -m pip install --quiet uv || python3 -m pip install --quiet --user uv; \
	fi
	@# --compile-bytecode: every process (a backfill, each test's run) would otherwise compile Dagster, ccxt
	@# and pandas from source again where PYTHONDONTWRITEBYTECODE is set (as on our CI machines): half of a
	@# one-day backfill's CPU (docs/BENCHMARKS.md). Only the first sync pays it (~40 s); later ones are instant.
	@$(UV) sync --frozen --quiet --compile-bytecode

browser:  ## headless Chromium for the live chart test: apt-installed when missing in CI (root), else a hint
	@bash scripts/ensure_browser.sh

test: install browser  ## run the whole test suite (the CI command)
	$(PY) pytest

test-core: install  ## only the fast tests of the core (no Dagster runs, no Postgres, no S3)
	$(PY) pytest -m "not integration"

faults: install  ## the fault matrix: every test that proves a fault case (docs/RELIABILITY.md), ~2 min
	$(PY) pytest -m faults

lint: install  ## ruff lint + format check
	$(PY) ruff check .
	$(PY) ruff format --check .

format: install  ## apply ruff fixes and formatting
	$(PY) ruff check --fix .
	$(PY) ruff format .

dev: install  ## Dagster UI + daemon against the configured (default: real) exchanges
	$(PY) dagster dev -w workspace.yaml -h 127.0.0.1

sim: install  ## the exchange simulator in the foreground on 127.0.0.1:8900
	$(PY) marketdata-sim --host 127.0.0.1 --port 8900

demo: install  ## the real pipeline end to end, offline, against the simulator
	$(PY) python -m marketdata_assets.cli.demo

live: install  ## the live service (buffers, API on :8800, SSE) against a simulator, offline
	$(PY) python -m marketdata_assets.cli.live

bench: install  ## benchmarks vs baselines and floors (docs/BENCHMARKS.md): one table + bench/results/latest.json; SCENARIO=name for one
	$(PY) python -m bench.run $(if $(SCENARIO),--scenario $(SCENARIO))

demo-ui: install  ## the Dagster UI over the demo's instance and data (after make demo): http://127.0.0.1:3000
	DAGSTER_HOME=$(CURDIR)/data/demo/.dagster MARKETDATA_ENV=demo \
	MARKETDATA_DEMO_START=$$(cat data/demo/.dagster/demo-start 2>/dev/null || echo 2024-01-01) \
	$(PY) dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

ui-shots: install  ## screenshots of the Dagster UI over the demo instance into docs/ui/ (after make demo; needs chromium)
	@test -d data/demo/.dagster || { echo "data/demo/.dagster is missing: run make demo first"; exit 1; }
	$(PY) python scripts/ui_shots.py

up:  ## the team stack in Docker: Postgres, code server, daemon, UI on :3000, MinIO (README.md, Running for a team)
	@command -v docker >/dev/null 2>&1 || { echo "make up needs Docker with the compose plugin"; exit 1; }
	docker compose up -d --build

down:  ## stop the team stack (volumes, so data and run history, are kept)
	docker compose down
