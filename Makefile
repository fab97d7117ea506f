# ess-export: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv and install ess-export with its test tools

.PHONY: demo
demo: $(STAMP) ## Write the demo source databases and export them into ./public
	$(BIN)/ess-export demo
	$(BIN)/ess-export run --config config/demo.toml --target ./public
	@echo "Published to ./public: open public/catalog.json, or list public/data/"

.PHONY: system-deps
system-deps: ## Install the system packages the tests need (PostgreSQL server)
	bash .ci/system-deps.sh

.PHONY: test
test: $(STAMP) system-deps ## Run the test suite (starts its own PostgreSQL)
	$(BIN)/python -m pytest

.PHONY: lint
lint: $(STAMP) ## Check style with ruff
	$(BIN)/ruff check exporter tests bench
	$(BIN)/ruff format --check exporter tests bench

.PHONY: bench
bench: $(STAMP) system-deps ## Measure export speed against psql \copy, pandas and a row loop
	$(BIN)/python bench/export_bench.py

.PHONY: golden
golden: $(STAMP) system-deps ## Re-record the seed service's replies into tests/golden/replies (pip, ~3 min)
	$(BIN)/python -m tests.golden.record

.PHONY: clean
clean: ## Remove the venv, demo data and the local publish
	rm -rf $(VENV) demo-data public test-artifacts
