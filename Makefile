# Set-up and entry points. `make quickstart` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FMNIST_DIR := /usr/share/datasets/fashion-mnist
# Our shared offline data, when it sits beside the checkout; tests that use it skip without it.
export GFA_JAX_SHARED_DATA ?= $(abspath $(wildcard ../shared/data))

.PHONY: setup quickstart test test-all fashion-mnist benchmarks

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# Debian ships Fashion-MNIST's IDX files; the quickstart trains on them offline.
fashion-mnist:
	@test -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist; fi; }

quickstart: setup fashion-mnist
	$(PY) -m gfa_jax.main --config configs/quickstart.py --workdir runs/quickstart

test: setup
	$(PY) -m pytest -q -m "not slow"

test-all: setup
	$(PY) -m pytest -q

benchmarks: setup
	$(PY) benchmarks/train_step.py
