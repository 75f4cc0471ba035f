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

.PHONY: run test lint typecheck contracts pytest stress bench bench-package quality label-noise recipe-quality package test-package sysdeps clean help

help:
	@echo "make run [DATA=/path]   set up .venv and open the app (bundled sample without DATA)"
	@echo "make test               set up .venv with dev tools; ruff, import-linter, mypy (all rings), pytest"
	@echo "make stress             the attack suites at full size (fuzzed parsers, kill -9 harness, long session)"
	@echo "make bench [BENCH=pfx]  run benchmarks, write bench/results.json"
	@echo "make quality            label quality (seeded corruptions ranked with and without out-of-fold models, beside"
	@echo "                        cleanlab: bench/label_noise.json, ~20 min), then recipe-quality (40 min)"
	@echo "make recipe-quality     5-fold cross-validation of lungs-lr and lesion + final models, bench/quality.json (40 min)"
	@echo "make package            build the one-folder app, .deb and .tar.gz into dist/ (PyInstaller, minutes)"
	@echo "make test-package       build the installers and smoke-test the installed .deb (offscreen + Xvfb)"
	@echo "make bench-package      build the installers and record build time, sizes, frozen cold start"

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
	$(VENV)/bin/mypy segstudio

pytest: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -m "not packaging" -p no:cacheprovider $(PYTEST_ARGS)

test: lint contracts typecheck pytest

# The attack suites of tests/stress at full size; `make test` runs the same tests with small counts.
stress: $(STAMP)
	SEGSTUDIO_STRESS=full QT_QPA_PLATFORM=offscreen $(PY) -m pytest -p no:cacheprovider --timeout 3600 tests/stress $(PYTEST_ARGS)

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m bench $(if $(BENCH),--only $(BENCH),)

# Label quality (bench/label_noise.py, docs/quality.md): corrupts a seeded 20 % of the Montgomery and facade masks,
# ranks them without a model, with 4-fold out-of-fold models trained on the noisy labels, and with cleanlab on the
# same probabilities; writes precision/recall at k into bench/label_noise.json. cleanlab (AGPL-3.0) comes from the
# `bench` extra, installed here only: never a runtime dependency.
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[dev,bench]"
	rm -f $(VENV)/.bench-* && touch $@

quality: $(BENCH_STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m bench.label_noise --folds 4
	QT_QPA_PLATFORM=offscreen $(PY) bench/quality.py

label-noise: quality

# Recipe quality on the real data (bench/quality.py, part of `make quality`): 5-fold cross-validation of lungs-lr and
# lesion (out-of-fold Dice/IoU, their spread) and each one's final model, in 40 minutes on this CPU; bench/quality.json.
recipe-quality: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) bench/quality.py

# Installers (docs/packaging.md). PyInstaller comes from the `package` extra; the packaging tools (dpkg-dev,
# zstd, xvfb) from packaging/sysdeps.sh. The torch in .venv (CUDA or CPU) decides the artifact's variant.
PKG_STAMP := $(VENV)/.package-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
$(PKG_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[dev,package]"
	rm -f $(VENV)/.package-* && touch $@

package: $(PKG_STAMP)
	@bash packaging/sysdeps.sh
	$(PY) packaging/build.py

test-package: $(PKG_STAMP) sysdeps
	@bash packaging/sysdeps.sh
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -m packaging -p no:cacheprovider tests/packaging $(PYTEST_ARGS)

bench-package: $(PKG_STAMP)
	@bash packaging/sysdeps.sh
	SEGSTUDIO_BENCH_PACKAGE=1 QT_QPA_PLATFORM=offscreen $(PY) -m bench --only package

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
