# segstudio — the two commands of the README are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
DATA ?=
BENCH ?=
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint typecheck contracts pytest bench bench-package quality package test-package sysdeps clean help

help:
	@echo "make run [DATA=/path]   set up .venv and open the app (bundled sample without DATA)"
	@echo "make test               set up .venv with dev tools; ruff, import-linter, mypy (ring 1), pytest"
	@echo "make bench [BENCH=pfx]  run benchmarks, write bench/results.json"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

# torch first and pinned: these releases lie on this machine's disk (a CUDA build); elsewhere pip fetches them.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# The apt libraries a real (xcb) Qt window needs; only when root and only when missing.
sysdeps:
	@bash tools/sysdeps.sh

run: $(STAMP) sysdeps
	$(VENV)/bin/segstudio $(DATA)

lint: $(STAMP)
	$(VENV)/bin/ruff check segstudio tests bench

contracts: $(STAMP)
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy segstudio/core segstudio/datasets segstudio/masks segstudio/metrics segstudio/workspace

pytest: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -m "not packaging" -p no:cacheprovider $(PYTEST_ARGS)

test: lint contracts typecheck pytest

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m bench $(if $(BENCH),--only $(BENCH),)

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
