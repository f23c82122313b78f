# dynipsec — the two commands that matter are `make demo` and `make test`.
# Both run ci/setup.sh first (idempotent: Debian packages + .venv).
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
DYN   := $(VENV)/bin/dynipsec
PYTEST_ARGS ?=
# make bench QUICK=1: small sizes (under 3 minutes)
QUICK ?=

.PHONY: setup demo test unit lab-test bench clean

setup:
	bash ci/setup.sh

demo: setup
	$(DYN) demo

test: setup
	$(PY) -m pytest -ra $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest -ra tests/unit $(PYTEST_ARGS)

lab-test: setup
	$(PY) -m pytest -ra -m lab $(PYTEST_ARGS)

bench: setup
	$(PY) bench/run_all.py $(if $(QUICK),--quick)

# Removes lab leftovers of crashed runs (by recorded names and PIDs) and build
# artefacts; keeps .venv (delete it by hand to force a fresh setup).
clean:
	-[ -x $(DYN) ] && $(DYN) lab clean
	rm -rf build *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
