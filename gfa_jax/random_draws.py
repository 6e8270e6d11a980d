"""``jax.random``'s uniform, normal and Rademacher draws, the same values, with short compiles.

Why: with JAX's default partitionable threefry, a draw of a multi-dimensional shape builds each
element's counter from one iota per dimension, and XLA:CPU fuses that index arithmetic into one
kernel whose LLVM IR grows with the rank: compiling ``jax.random.uniform(key, (256, 32, 32, 3))``
takes 1.2 s on the 2-core dev machine (0.5 s for ``(256, 1, 32, 3)``), the same draw over the
flattened shape 0.2 s (``benchmarks/random_compile.py``). The counter is the element's position in
row-major order either way, so a flat draw reshaped is the same array, bit for bit
(``tests/test_random_draws.py`` holds JAX to that). Every random start of an attack draws an
image-shaped array, so this was most of a random-start attack's compile time (PGD on the paper CNN:
1.5 s with its random start, 0.7 s without).
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array


def _flat(shape: Sequence[int]) -> tuple[int]:
    return (math.prod(shape),)


def uniform(key, shape: Sequence[int], dtype=jnp.float32, minval=0.0, maxval=1.0) -> Array:
    """``jax.random.uniform(key, shape, dtype, minval, maxval)``, drawn flat and reshaped."""
    return jax.random.uniform(key, _flat(shape), dtype, minval, maxval).reshape(shape)


def normal(key, shape: Sequence[int], dtype=jnp.float32) -> Array:
    """``jax.random.normal(key, shape, dtype)``, drawn flat and reshaped."""
    return jax.random.normal(key, _flat(shape), dtype).reshape(shape)


def rademacher(key, shape: Sequence[int], dtype=jnp.float32) -> Array:
    """``jax.random.rademacher(key, shape, dtype)`` (each entry -1 or +1), drawn flat and reshaped."""
    return jax.random.rademacher(key, _flat(shape), dtype).reshape(shape)
