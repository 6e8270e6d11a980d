"""JSMA: Jacobian-based Saliency Map Attack (Papernot et al., EuroS&P 2016), two-feature variant as
in torchattacks' ``JSMA(model, theta=1.0, gamma=0.1)``, batched.

Each iteration computes the Jacobian of all logits (one ``jax.vjp``, one-hot cotangents vmapped over
the classes), and with ``a = d z_t / dx`` and ``b = sum_{k != t} d z_k / dx`` picks the pair of
features ``p != q`` (still in the search domain) maximising ``|a_p + a_q| * |b_p + b_q|`` subject to
``a_p + a_q > 0`` and ``b_p + b_q < 0`` (signs flipped for ``theta < 0``), adds ``theta * (hi - lo)``
to both, clips to ``bounds`` and removes them from the search domain. A sample stops when it is
classified as the target, after ``ceil(D * gamma / 2)`` iterations, or when its domain is empty.
Features within 1% of the box edge they would be pushed towards start outside the domain.

Untargeted (default), the target is ``(y + 1) % K`` as in torchattacks (JSMA has no untargeted
objective); ``success`` still means ``argmax != y``. With ``targeted=True``, ``y`` is the target
and success means ``argmax == y``. ``norm`` is the L0 count of changed features (the registry has no
``l0`` metric, so it is registered with ``norm="none"``).

Deviations from torchattacks: ``theta`` is a fraction of the box width ``hi - lo`` (torchattacks
works on [0, 1], where the two coincide); the saliency uses ``|alpha| * |beta|`` (torchattacks'
``alpha * |beta|`` is the same for ``theta > 0`` but breaks for ``theta < 0``). As in torchattacks,
when no pair satisfies the sign conditions, the pair (0, 0) is taken (feature 0 moves by 2 theta).
Memory: the saliency map is ``[B, D, D]``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gfa_jax.attacks import loops
from gfa_jax.attacks.base import (
    Array,
    Bounds,
    LogitsFn,
    MinNormResult,
    _expand,
    register,
)


@register("jsma", norm="none", kind="minimum_norm", test_kwargs={"gamma": 0.2})
def jsma(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array | None = None,
    *,
    bounds: Bounds,
    theta: float = 1.0,
    gamma: float = 0.1,
    targeted: bool = False,
) -> MinNormResult:
    """JSMA (see the module docstring). ``key`` is unused (deterministic attack).

    Args:
      theta: perturbation per chosen feature, as a fraction of ``hi - lo`` (static sign).
      gamma: at most this fraction of the features is modified (two per iteration).
      targeted: if True, ``y`` holds the target labels.

    Returns:
      :class:`MinNormResult` with ``norm`` the number of changed features (L0).
    """
    del key
    lo, hi = float(bounds[0]), float(bounds[1])
    increasing = theta > 0
    batch = x.shape[0]
    num_features = math.prod(x.shape[1:])
    max_iters = int(math.ceil(num_features * gamma / 2.0))
    step = theta * (hi - lo)

    logits0 = logits_fn(x)
    num_classes = logits0.shape[-1]
    target = y if targeted else (y + 1) % num_classes
    cotangents = jnp.eye(num_classes, dtype=logits0.dtype)[:, None, :].repeat(batch, axis=1)  # [K, B, K]
    off_diagonal = ~jnp.eye(num_features, dtype=bool)
    flat0 = x.reshape(batch, num_features)
    margin = 0.01 * (hi - lo)
    domain0 = flat0 < hi - margin if increasing else flat0 > lo + margin

    def reached(logits):
        return jnp.argmax(logits, axis=-1) == target

    def body(state):
        i, flat, domain, active = state
        logits, vjp = jax.vjp(lambda f: logits_fn(f.reshape(x.shape)), flat)
        jac = jax.vmap(lambda c: vjp(c)[0])(cotangents)  # [K, B, D]
        target_grad = jnp.take_along_axis(jac, target[None, :, None], axis=0)[0]  # [B, D]
        others_grad = jnp.sum(jac, axis=0) - target_grad
        coef = (2.0 if increasing else -2.0) * (~domain).astype(flat.dtype)
        t_tmp = target_grad - coef * jnp.max(jnp.abs(target_grad), axis=-1, keepdims=True)
        o_tmp = others_grad + coef * jnp.max(jnp.abs(others_grad), axis=-1, keepdims=True)
        alpha = t_tmp[:, None, :] + t_tmp[:, :, None]
        beta = o_tmp[:, None, :] + o_tmp[:, :, None]
        mask = ((alpha > 0) & (beta < 0)) if increasing else ((alpha < 0) & (beta > 0))
        saliency = jnp.where(mask & off_diagonal, jnp.abs(alpha) * jnp.abs(beta), 0.0)
        idx = jnp.argmax(saliency.reshape(batch, -1), axis=-1)
        p, q = idx // num_features, idx % num_features
        pick = jax.nn.one_hot(p, num_features, dtype=flat.dtype) + jax.nn.one_hot(q, num_features, dtype=flat.dtype)
        new_flat = jnp.clip(flat + step * pick, lo, hi)
        flat = jnp.where(active[:, None], new_flat, flat)
        domain = jnp.where(active[:, None], domain & (pick == 0), domain)
        i = i + 1
        active = active & ~reached(logits_fn(flat.reshape(x.shape))) & (i < max_iters) & jnp.any(domain, axis=-1)
        return i, flat, domain, active

    def cond(state):
        return jnp.any(state[3])

    active0 = ~reached(logits0) & jnp.any(domain0, axis=-1) & (max_iters > 0)
    _, flat, _, _ = loops.while_loop(cond, body, (jnp.asarray(0), flat0, domain0, active0))

    x_adv = flat.reshape(x.shape)
    pred = jnp.argmax(logits_fn(x_adv), axis=-1)
    success = (pred == y) if targeted else (pred != y)
    x_adv = jnp.where(_expand(success, x), x_adv, x)
    changed = jnp.sum((x_adv != x).reshape(batch, -1), axis=-1).astype(x.dtype)
    norm = jnp.where(success, changed, jnp.inf)
    return MinNormResult(x_adv, success, norm)
