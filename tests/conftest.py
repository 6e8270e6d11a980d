"""Test setup: several CPU devices so sharding is exercised, cheap compilation, and small shared fixtures.

Compiling, not running, is what the tests' tiny models spend their time on, so (unless already set):

- ``JAX_DISABLE_MOST_OPTIMIZATIONS=1``: XLA runs its HLO passes as usual but LLVM generates code at
  ``-O0`` (``xla_backend_optimization_level=0``), which halves the time of a compile on CPU. The
  programs are the same HLO, their values agree with the optimised build's to float rounding (~1e-7
  on the tiny MLP's attacks), they only run slower, which costs little at these sizes.
  ``JAX_DISABLE_MOST_OPTIMIZATIONS=0 pytest ...`` tests the optimised build.
- ``JAX_COMPILATION_CACHE_DIR``: a compilation cache shared by this session, its subprocesses (the
  README's commands, SLURM jobs, the legacy run) and its pytest-xdist workers, deleted at the end: a
  program compiled again (``train_and_evaluate`` jits its step anew on every call, a resumed run, a
  second seed in its own job) is loaded instead. It holds nothing from earlier sessions.
"""
import atexit
import os
import shutil
import tempfile

# Must happen before jax is imported anywhere (and is inherited by subprocesses and xdist workers).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")  # four host devices
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache_dir = tempfile.mkdtemp(prefix="gfa_jax_test_compilation_cache_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache_dir
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)  # only the process that made it
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

import pathlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from fake_data import write_idx  # noqa: E402


@pytest.fixture(scope="session")
def tiny_fashion_mnist(tmp_path_factory) -> pathlib.Path:
    """128 train / 64 test 28x28 images whose class sets the mean brightness of a quadrant."""
    directory = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 128), ("t10k", 64)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 80, (n, 28, 28))
        for i, label in enumerate(labels):
            images[i, (label % 4) * 7:(label % 4) * 7 + 7, (label // 4) * 9:(label // 4) * 9 + 9] += 150
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return directory


