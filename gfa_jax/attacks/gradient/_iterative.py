"""Machinery shared by the gradient attacks (FGSM family, BIM, PGD, MI/NI/DI-FGSM, EOT-PGD, Jitter,
PGD-L2, PI-FGSM and PI-FGSM++). Not an attack itself: the leading underscore keeps the package from
importing it as one.

Every loop here is a :func:`gfa_jax.attacks.loops.fori_loop` (a ``lax.fori_loop`` whose body has its
convolutions in XLA:CPU's fast layout) with a static trip count, so an attack traces its step once;
``unroll`` (static) says how many steps XLA sees per loop iteration (``True``: all of them). These
attacks return the last iterate (torchattacks' definition), so they run every step: stopping a
sample at its first misclassified iterate would change which samples count as robust.
Step sizes, eps and momentum decay are traced values, so ``jax.vmap`` over any of them works.

Default hyperparameters in the attack modules follow torchattacks, whose inputs live in [0, 1];
ours live in [-1, 1], so distances (eps, step sizes, L2 radii) are torchattacks' values times the
range width 2, e.g. eps = 2 * 8/255 for torchattacks' 8/255.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gfa_jax import random_draws
from gfa_jax.attacks import loops
from gfa_jax.attacks.base import (
    Array,
    Bounds,
    LogitsFn,
    _expand,
    attack_objective,
    clip_to_bounds,
    input_gradient,
    normalize_l2,
    project_l2,
    project_linf,
)

# None: a rolled loop (``unroll=1``) on every backend. Loop bodies go through
# :func:`gfa_jax.attacks.loops.fori_loop`, which puts convolutions in XLA:CPU's canonical layout:
# without it a rolled PGD-10 on the paper CNN ran 3-4x slower than unrolled on CPU (the backward
# convolution of a while body fell back to a naive loop nest; results/benchmarks/loop_slowdown.md),
# with it the rolled loop is as fast as the unrolled one and compiles faster.
DEFAULT_UNROLL: bool | int | None = None

# (x_adv, key) -> d objective / d x_adv, shape of x_adv. The key feeds attacks with a random
# forward pass (input diversity, EOT, Jitter's noise); deterministic ones ignore it, and their
# loops get ``key=None`` so that no key is split per step (splitting made a 3-step PGD compile in
# ~1.5 s instead of ~0.8 s on CPU).
GradientFn = Callable[[Array, Array | None], Array]

# torchattacks' defaults, in our [-1, 1] units (the range width is 2).
RANGE_WIDTH = 2.0


def split_or_none(key: Array | None) -> tuple[Array | None, Array | None]:
    """``(key, subkey)`` for the next step, or ``(None, None)`` for deterministic gradients."""
    return (None, None) if key is None else tuple(jax.random.split(key))


def step_size(alpha, eps, ratio: float):
    """``alpha``, or ``ratio * eps`` when it is None: torchattacks' step-to-eps ratio, kept in an eps sweep."""
    return jnp.asarray(eps) * ratio if alpha is None else alpha


def resolve_unroll(unroll: bool | int | None) -> bool | int:
    """``unroll`` as given, or for None (the default): a rolled loop (1)."""
    return 1 if unroll is None else unroll


def run_loop(step: Callable, state, steps: int, unroll: bool | int | None):
    """``state <- step(state)``, ``steps`` (static) times, as one :func:`loops.fori_loop`."""
    return loops.fori_loop(0, steps, lambda _, s: step(s), state, unroll=resolve_unroll(unroll))


def objective_gradient(logits_fn: LogitsFn, y: Array, loss: str, targeted: bool) -> GradientFn:
    """Gradient of :func:`base.attack_objective` (the loss, negated when targeted); ignores the key."""
    objective = attack_objective(logits_fn, loss, targeted)
    return lambda x_adv, key: input_gradient(objective, x_adv, y)[1]


# ----------------------------------------------------------------------------- random starts


def uniform_linf_start(key: Array, x: Array, eps, bounds: Bounds) -> Array:
    """``clip(x + U(-eps, eps))``: Madry et al.'s random start, inside the L-inf ball and the box."""
    noise = random_draws.uniform(key, x.shape, x.dtype, -1.0, 1.0) * _expand(eps, x)
    return clip_to_bounds(x + noise, bounds)


def random_l2_start(key: Array, x: Array, eps, bounds: Bounds) -> Array:
    """torchattacks' PGD-L2 start: a Gaussian direction scaled to radius ``eps * U(0, 1)``."""
    k_direction, k_radius = jax.random.split(key)
    direction = normalize_l2(random_draws.normal(k_direction, x.shape, x.dtype))
    radius = jax.random.uniform(k_radius, (x.shape[0],), x.dtype) * jnp.asarray(eps, x.dtype)
    return clip_to_bounds(x + direction * _expand(radius, x), bounds)


def linf_start(key: Array, x: Array, eps, bounds: Bounds, random_start: bool) -> Array:
    return uniform_linf_start(key, x, eps, bounds) if random_start else x


# ----------------------------------------------------------------------------- L-inf sign steps


def linf_sign_step(x_adv: Array, direction: Array, x: Array, eps, alpha, bounds: Bounds) -> Array:
    """``Proj_{||. - x||_inf <= eps, bounds}(x_adv + alpha * sign(direction))``."""
    return project_linf(x_adv + _expand(alpha, x) * jnp.sign(direction), x, eps, bounds).astype(x.dtype)


def mean_abs_normalized(grad: Array) -> Array:
    """``grad / mean|grad|`` per sample (MI-FGSM's normalisation); a zero gradient stays zero."""
    scale = jnp.mean(jnp.abs(grad), axis=tuple(range(1, grad.ndim)), keepdims=True)
    return grad / jnp.maximum(scale, jnp.finfo(grad.dtype).tiny)


def linf_sign_ascent(
    gradient_fn: GradientFn,
    x: Array,
    x_start: Array,
    key: Array | None,
    *,
    eps,
    alpha,
    steps: int,
    bounds: Bounds,
    decay=0.0,
    nesterov: bool = False,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """Iterated sign-gradient ascent with momentum, projected onto the L-inf ball and the box.

    Per step (Dong et al. 2018; Lin et al. 2020 for ``nesterov``)::

        g     = grad(x_adv + decay * alpha * m)   if nesterov else grad(x_adv)
        m     = decay * m + g / mean|g|
        x_adv = Proj(x_adv + alpha * sign(m))

    With ``decay = 0`` this is BIM / PGD exactly: ``sign(g / mean|g|) == sign(g)``.
    Each step draws a fresh subkey of ``key`` for ``gradient_fn`` (``None`` if ``key`` is None).
    """
    alpha = _expand(alpha, x)
    decay = _expand(decay, x)

    def step(state):
        x_adv, momentum, key = state
        key, subkey = split_or_none(key)
        probe = x_adv + decay * alpha * momentum if nesterov else x_adv
        momentum = decay * momentum + mean_abs_normalized(gradient_fn(probe, subkey))
        return linf_sign_step(x_adv, momentum, x, eps, alpha, bounds), momentum, key

    x_adv, _, _ = run_loop(step, (x_start.astype(x.dtype), jnp.zeros_like(x), key), steps, unroll)
    return x_adv


# ----------------------------------------------------------------------------- L2 steps


def l2_gradient_ascent(
    gradient_fn: GradientFn,
    x: Array,
    x_start: Array,
    key: Array | None,
    *,
    eps,
    alpha,
    steps: int,
    bounds: Bounds,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """``x_adv <- Proj_{||. - x||_2 <= eps, bounds}(x_adv + alpha * g / ||g||_2)``, ``steps`` times.

    Each step draws a fresh subkey of ``key`` for ``gradient_fn`` (``None`` if ``key`` is None).
    """
    alpha = _expand(alpha, x)

    def step(state):
        x_adv, key = state
        key, subkey = split_or_none(key)
        ascent = alpha * normalize_l2(gradient_fn(x_adv, subkey))
        return project_l2(x_adv + ascent, x, eps, bounds).astype(x.dtype), key

    x_adv, _ = run_loop(step, (x_start.astype(x.dtype), key), steps, unroll)
    return x_adv


# ----------------------------------------------------------------------------- patch-wise steps


def require_images(x: Array, attack: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{attack} needs NHWC image batches, got an input of shape {x.shape}.")


def depthwise_conv(x: Array, kernel: np.ndarray) -> Array:
    """Convolve every channel of NHWC ``x`` with the same odd-sized 2-D ``kernel`` (a constant), zero
    padding: ``lax.conv_general_dilated`` with ``feature_group_count = C``, as a weighted sum of
    shifted copies. XLA:CPU ran that grouped convolution on 3-channel images in a slow loop (72 ms a
    call on 256 CIFAR images, a third of a PI-FGSM++ step); the sum fuses into one elementwise pass."""
    kh, kw = kernel.shape
    height, width = x.shape[1:3]
    padded = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    terms = [float(kernel[i, j]) * padded[:, i:i + height, j:j + width, :]
             for i in range(kh) for j in range(kw) if kernel[i, j] != 0]
    return functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(x)


def project_kernel(size: int = 3) -> np.ndarray:
    """PI-FGSM's project kernel: uniform weights ``1 / (size^2 - 1)`` with a zero centre."""
    kernel = np.full((size, size), 1.0 / (size * size - 1), np.float32)
    kernel[size // 2, size // 2] = 0.0
    return kernel


def patchwise_ascent(
    gradient_fn: GradientFn,
    x: Array,
    key: Array | None,
    *,
    eps,
    steps: int,
    amplification,
    project_factor,
    bounds: Bounds,
    gradient_kernel: np.ndarray | None = None,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """Patch-wise iterative FGSM (Gao et al. 2020a, b), as torchattacks' PIFGSM / PIFGSMPP.

    With ``beta`` the amplification, ``alpha = eps / steps``, ``gamma = project_factor * beta * alpha``
    and ``W_p`` the project kernel, per step::

        g     = grad(x_adv)                      (then convolved with ``gradient_kernel`` if given)
        a     = a + beta * alpha * sign(g)       (the accumulated amplified noise)
        C     = max(|a| - eps, 0) * sign(a)      (the part of it cut off by the eps ball)
        p     = gamma * sign(W_p * C)            (redistributed onto the surrounding patch)
        a     = a + p
        x_adv = Proj(x_adv + beta * alpha * sign(g) + p)
    """
    require_images(x, "Patch-wise FGSM")
    step_size = _expand(jnp.asarray(eps, x.dtype) / steps * amplification, x)
    gamma = step_size * _expand(project_factor, x)
    kernel = project_kernel(3)

    def step(state):
        x_adv, amplified, key = state
        key, subkey = split_or_none(key)
        grad = gradient_fn(x_adv, subkey)
        if gradient_kernel is not None:
            grad = depthwise_conv(grad, gradient_kernel)
        amplified_step = step_size * jnp.sign(grad)
        amplified = amplified + amplified_step
        cut_noise = jax.nn.relu(jnp.abs(amplified) - _expand(eps, x)) * jnp.sign(amplified)
        projection = gamma * jnp.sign(depthwise_conv(cut_noise, kernel))
        amplified = amplified + projection
        x_adv = project_linf(x_adv + amplified_step + projection, x, eps, bounds).astype(x.dtype)
        return x_adv, amplified, key

    x_adv, _, _ = run_loop(step, (x, jnp.zeros_like(x), key), steps, unroll)
    return x_adv
