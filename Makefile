# breedlab: the two commands a new user runs are `make demo` and `make test`.
# Every install step lives here, so a green CI cannot hide a step done by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
PYTEST_WORKERS ?= 2

.PHONY: venv demo test check lint format typecheck unit bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned, so nothing resolves a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# Test-only oracle for the merge methods (LGPL, never vendored). Its math API needs only
	# torch and pydantic; --no-deps keeps its heavy optional stack (datasets, pyarrow) out.
	$(PY) -m pip install -q --no-deps mergekit==0.1.5
	rm -f $(VENV)/.installed-*
	touch $@

demo: venv
	rm -rf demo-lab
	$(VENV)/bin/breedlab demo demo-lab

test: venv
	$(MAKE) check

check: lint typecheck unit

lint: venv
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks

format: venv
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

typecheck: venv
	$(VENV)/bin/mypy src

unit: venv
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) -q

bench: venv
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/round.py
	$(PY) benchmarks/merge.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
