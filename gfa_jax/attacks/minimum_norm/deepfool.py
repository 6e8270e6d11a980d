"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016), L2 and L-inf, batched.

At each iteration the classifier is linearised around the current point and the point is moved to
the closest linearised decision boundary between the true class ``y`` and a candidate class ``k``::

    w_k = grad z_k - grad z_y,   f_k = z_k - z_y,   l = argmin_k |f_k| / ||w_k||_q
    r_i = (|f_l| / ||w_l||_q + 1e-4) * w_l / ||w_l||_2      (L2,    q = 2)
    r_i = (|f_l| / ||w_l||_q + 1e-4) * sign(w_l)            (L-inf, q = 1, the dual norm)

and ``r_tot += r_i``. As in the authors' reference code, the overshoot multiplies the *total*
accumulated perturbation: the iterate is ``x + (1 + overshoot) * r_tot`` (clipped to ``bounds``; the
reference has no box, Foolbox clips like this), and the loop stops, per sample, as soon as the
iterate is misclassified. All samples run together in one ``lax.while_loop`` with a per-sample
``active`` mask; the gradients of the candidate logits come from one ``jax.vjp`` with one-hot
cotangents vmapped over the candidates (no Python loop over classes).

Candidate classes: all classes other than ``y`` by default, or, as in the reference
(``num_classes=10``), only the ``num_classes - 1`` classes with the largest clean logits besides
``y`` (the reference's ``num_classes`` counts the original class too).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from gfa_jax.attacks import loops
from gfa_jax.attacks.base import (
    Array,
    Bounds,
    LogitsFn,
    MinNormResult,
    _expand,
    clip_to_bounds,
    per_sample_norm,
    register,
)

_TINY = 1e-8


def _candidates(logits: Array, y: Array, num_classes: int | None) -> Array:
    """Indices ``[B, C]`` of the candidate classes: the top ``num_classes - 1`` clean logits besides y."""
    k = logits.shape[-1]
    n = k - 1 if num_classes is None else max(1, min(int(num_classes), k) - 1)
    masked = jnp.where(jax.nn.one_hot(y, k, dtype=bool), -jnp.inf, logits)
    return lax.top_k(masked, n)[1]


def _deepfool(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    *,
    ord: str,
    bounds: Bounds,
    max_iter: int,
    overshoot: float,
    num_classes: int | None,
    epsilon: float,
) -> MinNormResult:
    logits0 = logits_fn(x)
    num_logits = logits0.shape[-1]
    cands = _candidates(logits0, y, num_classes)  # [B, C]
    classes = jnp.concatenate([y[:, None], cands], axis=1)  # [B, 1 + C], y first
    cotangents = jax.nn.one_hot(classes.T, num_logits, dtype=logits0.dtype)  # [1 + C, B, K]
    overshoot = jnp.asarray(overshoot, x.dtype)
    q = 2 if ord == "l2" else 1  # dual norm of the attack's metric

    def iterate(r_tot):
        return clip_to_bounds(x + (1.0 + overshoot) * r_tot, bounds)

    def still_correct(logits):
        return jnp.argmax(logits, axis=-1) == y

    def body(state):
        i, r_tot, active = state
        logits, vjp = jax.vjp(logits_fn, iterate(r_tot))
        grads = jax.vmap(lambda c: vjp(c)[0])(cotangents)  # [1 + C, B, ...]
        sel = jnp.take_along_axis(logits, classes, axis=1).T  # [1 + C, B]
        w = grads[1:] - grads[:1]  # [C, B, ...]
        f = sel[1:] - sel[:1]  # [C, B]
        w_norm = jax.vmap(lambda v: per_sample_norm(v, q))(w)  # [C, B]
        pert = jnp.abs(f) / (w_norm + _TINY)
        best = jnp.argmin(pert, axis=0)  # [B]
        pert_l = jnp.take_along_axis(pert, best[None], axis=0)[0]
        w_l = jnp.take_along_axis(w, best.reshape((1, -1) + (1,) * (x.ndim - 1)), axis=0)[0]  # [B, ...]
        if ord == "l2":
            direction = w_l / (_expand(per_sample_norm(w_l, 2), w_l) + _TINY)
        else:
            direction = jnp.sign(w_l)
        r_i = _expand(pert_l + epsilon, x) * direction
        r_tot = jnp.where(_expand(active, x), r_tot + r_i, r_tot)
        active = active & still_correct(logits_fn(iterate(r_tot)))
        return i + 1, r_tot, active

    def cond(state):
        i, _, active = state
        return (i < max_iter) & jnp.any(active)

    state = (jnp.asarray(0), jnp.zeros_like(x), still_correct(logits0))
    _, r_tot, _ = loops.while_loop(cond, body, state)

    x_adv = iterate(r_tot)
    success = ~still_correct(logits_fn(x_adv))
    x_adv = jnp.where(_expand(success, x), x_adv, x)
    norm = jnp.where(success, per_sample_norm(x_adv - x, ord), jnp.inf)
    return MinNormResult(x_adv, success, norm)


@register("deepfool", norm="l2", kind="minimum_norm", test_kwargs={"max_iter": 5})
def deepfool(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array | None = None,
    *,
    bounds: Bounds,
    max_iter: int = 50,
    overshoot: float = 0.02,
    num_classes: int | None = None,
    epsilon: float = 1e-4,
) -> MinNormResult:
    """L2 DeepFool (untargeted). ``key`` is unused (deterministic attack).

    Args:
      max_iter: at most this many linearisation steps per sample (reference: 50).
      overshoot: the total perturbation is scaled by ``1 + overshoot`` (reference: 0.02).
      num_classes: candidate classes, counting ``y`` (reference: 10); None = all classes.
      epsilon: added to each step's length (the reference's ``pert + 1e-4``).

    Returns:
      :class:`MinNormResult`; ``norm`` is the L2 norm of ``x_adv - x``.
    """
    del key
    return _deepfool(logits_fn, x, y, ord="l2", bounds=bounds, max_iter=max_iter, overshoot=overshoot,
                     num_classes=num_classes, epsilon=epsilon)


@register("deepfool_linf", norm="linf", kind="minimum_norm", test_kwargs={"max_iter": 5})
def deepfool_linf(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array | None = None,
    *,
    bounds: Bounds,
    max_iter: int = 50,
    overshoot: float = 0.02,
    num_classes: int | None = None,
    epsilon: float = 1e-4,
) -> MinNormResult:
    """L-inf DeepFool (the paper's l_p generalisation with p = inf, dual norm L1). See :func:`deepfool`.

    Returns:
      :class:`MinNormResult`; ``norm`` is the L-inf norm of ``x_adv - x``.
    """
    del key
    return _deepfool(logits_fn, x, y, ord="linf", bounds=bounds, max_iter=max_iter, overshoot=overshoot,
                     num_classes=num_classes, epsilon=epsilon)
