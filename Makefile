# Set-up and entry points. `make quickstart` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements/py311.lock
FMNIST_DIR := /usr/share/datasets/fashion-mnist
# Our shared offline data, when it sits beside the checkout; tests that use it skip without it.
export GFA_JAX_SHARED_DATA ?= $(abspath $(wildcard ../shared/data))

.PHONY: setup quickstart test test-all lock fashion-mnist benchmarks

# The pinned, hash-checked versions of the lock file on Python 3.11 (what CI tests); on another
# Python, the ranges of pyproject.toml.
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then \
	  $(PY) -m pip install --quiet --require-hashes -r $(LOCK) && \
	  $(PY) -m pip install --quiet --no-deps -e . ; \
	else \
	  echo "Python is not 3.11: installing from the ranges in pyproject.toml, not the lock file $(LOCK)."; \
	  $(PY) -m pip install --quiet -e '.[test]' ; \
	fi
	touch $@

setup: $(VENV)/.installed

# Re-resolve the lock file from pyproject.toml (newest versions in its ranges), then test on it.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet 'pip-tools>=7.6,<8'
	.venv-lock/bin/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras \
	  --extra test -o $(LOCK) pyproject.toml
	$(MAKE) test

# Debian ships Fashion-MNIST's IDX files; the quickstart trains on them offline.
fashion-mnist:
	@test -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist; fi; }

quickstart: setup fashion-mnist
	$(PY) -m gfa_jax.main --config configs/quickstart.py --workdir runs/quickstart

test: setup
	$(PY) -m pytest -q -m "not slow" -n 2 --dist loadfile --durations=25

test-all: setup
	$(PY) -m pytest -q

benchmarks: setup
	$(PY) benchmarks/train_step.py
