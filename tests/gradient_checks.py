"""Finite-difference check shared by the regulariser tests."""
import jax
import jax.flatten_util
import numpy as np


def assert_gradient_matches_finite_differences(loss_fn, params, *, count: int = 12, step: float = 1e-6,
                                               rtol: float = 1e-5, atol: float = 1e-8) -> None:
    """``jax.grad(loss_fn)(params)`` against central differences on ``count`` random coordinates
    (call it under ``jax.enable_x64(True)`` with float64 parameters)."""
    grads = jax.grad(loss_fn)(params)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    flat_grads, _ = jax.flatten_util.ravel_pytree(grads)
    rng = np.random.default_rng(0)
    for index in rng.choice(flat.size, size=count, replace=False):
        offset = np.zeros(flat.size)
        offset[index] = step
        numeric = (loss_fn(unravel(flat + offset)) - loss_fn(unravel(flat - offset))) / (2 * step)
        np.testing.assert_allclose(flat_grads[index], numeric, rtol=rtol, atol=atol)
