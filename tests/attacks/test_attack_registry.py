"""Properties every registered attack must have, checked on the tiny trained MLP.

Parametrized over ``gfa_jax.attacks.REGISTRY``, so an attack is tested the day it is registered.
Each attack is called with its ``spec.test_kwargs`` (few steps) and compiled at most twice (one
scalar-eps and one vmapped-eps program), shared by all the tests below.
"""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_models import BOUNDS, mlp_apply, trained_mlp

from gfa_jax import attacks
from gfa_jax.attacks.base import MinNormResult, per_sample_norm

BATCH = 16
NUM_EPS = 5
# Radii that move the tiny MLP's inputs noticeably, per norm (inputs are 6x6x1 in [-1, 1]).
EPS_RANGE = {"linf": (0.02, 0.5), "l2": (0.1, 3.0), "l1": (0.5, 10.0)}
ATTACK_NAMES = sorted(attacks.REGISTRY)
BOUNDED_NAMES = [name for name in ATTACK_NAMES if attacks.REGISTRY[name].kind == "bounded"]


@functools.lru_cache(maxsize=None)
def problem():
    params, x, y = trained_mlp()
    return (lambda z: mlp_apply(params, z)), x[:BATCH], y[:BATCH]


def eps_values(norm: str) -> np.ndarray:
    low, high = EPS_RANGE.get(norm, EPS_RANGE["linf"])
    return np.random.default_rng(0).uniform(low, high, NUM_EPS).astype(np.float32)


@functools.lru_cache(maxsize=None)
def compiled(name: str):
    """``(single, batched)``: the jitted attack ``(x, y, key, eps)`` and its vmap over eps.

    ``single`` may be traced once only: every test reuses it with new eps values or keys, so a
    retrace anywhere fails the test that caused it. Minimum-norm attacks take no eps (ignored).
    """
    spec = attacks.REGISTRY[name]
    logits_fn = problem()[0]
    kwargs = {k: v for k, v in spec.test_kwargs.items() if k != "eps"}

    def run(x, y, key, eps):
        if spec.kind == "minimum_norm":
            return spec.fn(logits_fn, x, y, key, bounds=BOUNDS, **kwargs)
        return spec.fn(logits_fn, x, y, key, bounds=BOUNDS, eps=eps, **kwargs)

    run.__name__ = f"{name}_attack"  # chex counts traces per function name and source
    single = jax.jit(chex.assert_max_traces(run, n=1))
    batched = jax.jit(jax.vmap(run, in_axes=(None, None, None, 0)))
    return single, batched


@pytest.mark.parametrize("name", ATTACK_NAMES, ids=ATTACK_NAMES)
def test_attack_stays_in_bounds_and_ball(name):
    spec = attacks.REGISTRY[name]
    _, x, y = problem()
    single, batched = compiled(name)
    key = jax.random.key(1)

    if spec.kind == "minimum_norm":
        result = single(x, y, key, 0.0)
        assert isinstance(result, MinNormResult)
        assert result.x_adv.shape == x.shape and result.x_adv.dtype == x.dtype
        assert float(result.x_adv.min()) >= BOUNDS[0] and float(result.x_adv.max()) <= BOUNDS[1]
        assert result.success.shape == (BATCH,) and result.success.dtype == jnp.bool_
        prediction = jnp.argmax(problem()[0](result.x_adv), axis=-1)
        assert bool(jnp.all(jnp.where(result.success, prediction != y, True)))
        return

    eps = eps_values(spec.norm)
    x_adv = batched(x, y, key, jnp.asarray(eps))
    assert x_adv.shape == (NUM_EPS,) + x.shape and x_adv.dtype == x.dtype
    assert float(x_adv.min()) >= BOUNDS[0] and float(x_adv.max()) <= BOUNDS[1]
    for eps_i, x_adv_i in zip(eps, x_adv):
        distance = np.asarray(per_sample_norm(x_adv_i - x, spec.norm if spec.norm != "none" else jnp.inf))
        if spec.norm == "linf":
            assert distance.max() <= eps_i + 1e-6, (eps_i, distance.max())
        elif spec.norm in ("l2", "l1"):
            assert distance.max() <= eps_i * (1 + 1e-5), (eps_i, distance.max())


@pytest.mark.parametrize("name", ATTACK_NAMES, ids=ATTACK_NAMES)
def test_attack_is_deterministic_given_key(name):
    _, x, y = problem()
    single, _ = compiled(name)
    eps = float(eps_values(attacks.REGISTRY[name].norm)[0])
    first = single(x, y, jax.random.key(2), eps)
    second = single(x, y, jax.random.key(2), eps)
    chex.assert_trees_all_equal(first, second)


@pytest.mark.parametrize("name", BOUNDED_NAMES, ids=BOUNDED_NAMES)
def test_vmap_over_eps_matches_loop(name):
    _, x, y = problem()
    single, batched = compiled(name)
    key = jax.random.key(3)
    eps = eps_values(attacks.REGISTRY[name].norm)
    vmapped = np.asarray(batched(x, y, key, jnp.asarray(eps)))
    looped = np.stack([np.asarray(single(x, y, key, float(e))) for e in eps])
    np.testing.assert_allclose(vmapped, looped, atol=1e-5)


@pytest.mark.parametrize("name", ATTACK_NAMES, ids=ATTACK_NAMES)
def test_no_retrace_for_new_eps_or_key(name):
    _, x, y = problem()
    single, _ = compiled(name)
    eps = eps_values(attacks.REGISTRY[name].norm)
    # A second trace would raise inside `single` (chex.assert_max_traces(n=1)).
    jax.block_until_ready(single(x, y, jax.random.key(4), float(eps[1])))
    jax.block_until_ready(single(x, y, jax.random.key(5), float(eps[2])))


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", sorted(attacks.REGISTRY))
def test_every_attack_requires_bounds_by_name(name):
    x, y = jnp.zeros((2, 6, 6, 1)), jnp.zeros((2,), jnp.int32)
    with pytest.raises(TypeError, match="bounds"):
        attacks.REGISTRY[name].fn(lambda v: v.reshape(2, -1)[:, :4], x, y, jax.random.key(0))


@pytest.mark.parametrize("bad, message", [
    (dict(eps=-0.1), r"eps must be finite and >= 0, got -0.1"),
    (dict(eps=float("nan")), r"eps must be finite and >= 0, got nan"),
    (dict(bounds=(1.0, 0.0)), r"bounds must satisfy low < high"),
    (dict(bounds="0,1"), r"bounds must be a pair \(low, high\)"),
    (dict(bounds=(0.0, 0.5)), r"inputs range over \[0, 1\], outside bounds \(0, 0.5\)"),
    (dict(y=jnp.zeros((3,), jnp.int32)), r"expected x of shape \[B, ...\] and integer labels y of shape \[B\]"),
])
def test_bad_attack_inputs_are_named(bad, message):
    x = jnp.concatenate([jnp.zeros((1, 6, 6, 1)), jnp.ones((1, 6, 6, 1))])
    kwargs = {"eps": 0.1, "bounds": (0.0, 1.0), "y": jnp.zeros((2,), jnp.int32), **bad}
    y = kwargs.pop("y")
    with pytest.raises(ValueError, match=message):
        attacks.pgd(lambda v: v.reshape(v.shape[0], -1)[:, :4], x, y, jax.random.key(0), **kwargs)


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)])
def test_default_eps_scales_with_the_callers_box(bounds):
    x = jnp.full((4, 6, 6, 1), (bounds[0] + bounds[1]) / 2)
    logits_fn = lambda v: v.reshape(v.shape[0], -1)[:, :4] * jnp.arange(1.0, 5.0)
    x_adv = attacks.fgsm(logits_fn, x, jnp.zeros((4,), jnp.int32), jax.random.key(0), bounds=bounds)
    np.testing.assert_allclose(float(jnp.max(jnp.abs(x_adv - x))), (bounds[1] - bounds[0]) * 8 / 255, rtol=1e-5)


def test_attack_modules_and_functions_are_distinct_names():
    import gfa_jax.attacks.gradient.pgd as pgd_module

    assert pgd_module.pgd is attacks.pgd and callable(attacks.pgd)
    with pytest.raises(ModuleNotFoundError):
        __import__("gfa_jax.attacks.pgd")
