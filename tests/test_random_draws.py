"""random_draws: the same arrays as jax.random's draws, bit for bit, for every shape an attack draws."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gfa_jax import random_draws

KEY = jax.random.key(3)
SHAPES = [(), (5,), (4, 7), (2, 1, 6, 3), (3, 8, 8, 3), (2, 0, 3)]


@pytest.mark.parametrize("shape,dtype", [(shape, jnp.float32) for shape in SHAPES] + [((3, 8, 8, 3), jnp.bfloat16)],
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_flat_draws_equal_jax_random_bit_for_bit(shape, dtype):
    pairs = {
        "uniform": (random_draws.uniform(KEY, shape, dtype, -1.0, 2.0),
                    jax.random.uniform(KEY, shape, dtype, -1.0, 2.0)),
        "normal": (random_draws.normal(KEY, shape, dtype), jax.random.normal(KEY, shape, dtype)),
        "rademacher": (random_draws.rademacher(KEY, shape, dtype), jax.random.rademacher(KEY, shape, dtype)),
    }
    for name, (ours, theirs) in pairs.items():
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, name
        np.testing.assert_array_equal(np.asarray(ours, np.float32), np.asarray(theirs, np.float32), err_msg=name)


def test_flat_draws_equal_jax_random_under_jit_and_vmap_over_keys():
    keys = jax.random.split(KEY, 6)
    shape = (4, 4, 3)
    ours = jax.jit(jax.vmap(lambda k: random_draws.uniform(k, shape, jnp.float32, -1.0, 1.0)))(keys)
    theirs = jax.vmap(lambda k: jax.random.uniform(k, shape, jnp.float32, -1.0, 1.0))(keys)
    np.testing.assert_array_equal(ours, theirs)
    assert float(jnp.min(ours)) >= -1.0 and float(jnp.max(ours)) < 1.0


def test_rademacher_draws_only_plus_and_minus_one():
    signs = random_draws.rademacher(KEY, (64, 3, 3), jnp.float32)
    assert set(np.unique(np.asarray(signs)).tolist()) == {-1.0, 1.0}
