# One entry point for local development and CI (STYLE 15).
#   make demo   install everything, run ccloud_sim + the daemon, compute a chargeback
#   make test   install everything, then lint, types and the whole test suite
.DEFAULT_GOAL := all
SHELL := /bin/bash

UV_VERSION := 0.13.9
TOOLS := .tools
# Use a uv already on PATH; otherwise bootstrap a pinned one into .tools with pip.
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
VENV := .venv
RUN := $(UV) run --frozen --no-sync

.PHONY: all install lint format types pytest test demo bench system-deps focus-validator clean

all: test

$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode at install: where PYTHONDONTWRITEBYTECODE is set (this machine, CI), every
# Python process of the suite (the daemon, the sim, the CLI) would recompile its imports.
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --all-groups --compile-bytecode
	@touch $@

install: $(VENV)/.synced

# Debian packages of the real services the tests start (Prometheus, PostgreSQL, Chromium);
# installs only what is missing, instant when all is there.
system-deps:
	@scripts/install-system-deps

# The official FOCUS validator in its own Python 3.12 venv (tests/support/focus.py).
focus-validator: | $(UV)
	@scripts/install-focus-validator $(UV) $(TOOLS)/focus-venv

lint: install
	$(RUN) ruff check src tests bench docs
	$(RUN) ruff format --check src tests bench docs

format: install
	$(RUN) ruff format src tests bench docs
	$(RUN) ruff check --fix src tests bench docs

types: install
	$(RUN) mypy

# Branch coverage with the subprocesses the tests start; the bar is fail_under in pyproject.
pytest: install system-deps focus-validator
	$(RUN) pytest --cov --cov-report=term-missing:skip-covered

test: lint types pytest

demo: install
	$(RUN) chargeback demo --config settings.yaml

# The benchmarks of bench/README.md (several minutes; the kept databases take ~3 GB).
bench: install
	$(RUN) python -m bench.backfill --days 30,90,180 --keep-db var/bench-cache --out var/bench-backfill.json
	$(RUN) python -m bench.steady_state --days 30,90 --cache var/bench-cache --out var/bench-steady.json
	$(RUN) python -m bench.scrape --days 30 --out var/bench-scrape.json
	$(RUN) python -m bench.scale_curve --out var/bench-scale.json

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
