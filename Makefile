# The two commands a new user runs: `make demo` and `make test`. Everything else is for developers.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PARITY := $(VENV)/bin/parity

.PHONY: setup demo test lint typecheck unit golden golden-slow bench clean

setup:
	@scripts/setup.sh

demo: setup
	scripts/contained $(PARITY) demo

test: setup lint typecheck
	PYTHONASYNCIODEBUG=$${PYTHONASYNCIODEBUG:-0} scripts/contained $(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy wire recorder diffing

unit: setup
	$(PY) -m pytest -m "not legacy and not postgres" $(PYTEST_ARGS)

golden: setup
	scripts/contained $(PARITY) record --legacy --scenarios tests/scenarios --out tests/golden

golden-slow: setup  # the 15 s handshake-timeout scenario, kept out of the default set
	scripts/contained $(PARITY) record --legacy --scenarios tests/scenarios/slow --out tests/golden/slow

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache runs out
