"""Test setup: several CPU devices so sharding is exercised, and small shared fixtures."""
import os

# Must happen before jax is imported anywhere: four host devices for the sharding tests.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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


