# sar-repro. `make setup` builds .venv; every other target depends on it, so any target works on a
# fresh clone. Variables: PROFILE=smoke|cpu|paper, DATA_ROOT=..., NPROC=... (see README).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup test
.DEFAULT_GOAL := help

help:
	@echo "make setup               create .venv with the pinned dependencies"
	@echo "make test                the test suite (unit tests + notebooks at smoke scale)"

setup: $(STAMP)

# Re-install only when the dependency list changes. torch>=2.14 comes from the package registry (its
# build bundles CUDA libraries and also runs on CPU).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

test: setup
	$(PY) -m pytest
