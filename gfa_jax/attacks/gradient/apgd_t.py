"""APGD-T: APGD on the targeted DLR loss over the top classes (Croce & Hein 2020), as in
``APGDAttack_targeted`` of ``autoattack/autopgd_base.py``.

For ``target_class`` in ``2 .. n_target_classes + 1`` the target of a sample is its
``target_class``-th most likely class at the clean input; for each target, ``n_restarts`` APGD runs
ascend the targeted DLR loss ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``. Success is
*misclassification* (``argmax != y``), as in the reference. The ``(target, restart)`` runs keep
per sample the first success; each later run attacks only the samples not fooled yet, compacted
into chunks (as the reference runs them on the not-yet-fooled subset), and once few samples are
left several targets share a chunk (see :func:`gfa_jax.attacks.gradient.apgd.run_with_restarts`). ``n_target_classes`` is
clipped to ``K - 1`` (the reference assumes K > 9).
Needs at least 4 classes (the loss uses the 4th largest logit). Not fooled samples get their max-loss
point over all runs; clean misclassified inputs are returned unchanged.
"""
from __future__ import annotations

import jax.numpy as jnp

from gfa_jax.attacks.gradient.apgd import RHO, _project, run_with_restarts
from gfa_jax.attacks.base import (
    Array,
    Bounds,
    LogitsFn,
    dlr_targeted,
    register,
)


def apgd_targeted(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key,
    *,
    eps,
    bounds: Bounds,
    norm: str = "linf",
    n_iter: int = 100,
    n_target_classes: int = 9,
    n_restarts: int = 1,
    rho: float = RHO,
    chunk_size: int | None = None,
    skip: Array | None = None,
    tail_chunk_size: int | None = None,
) -> Array:
    """APGD-T (untargeted goal, targeted DLR loss over the top ``n_target_classes`` classes).

    ``y`` are the true labels. ``norm`` ('linf' or 'l2'), ``n_iter``, ``n_target_classes`` and
    ``n_restarts`` are static; ``chunk_size``, ``tail_chunk_size`` and ``skip`` as in
    :func:`gfa_jax.attacks.gradient.apgd.apgd`.
    """
    clean_logits = logits_fn(x)
    n_classes = clean_logits.shape[-1]
    if n_classes < 4:
        raise ValueError("APGD-T (targeted DLR loss) needs at least 4 classes.")
    n_targets = min(n_target_classes, n_classes - 1)
    order = jnp.argsort(clean_logits, axis=-1)  # ascending
    already = jnp.argmax(clean_logits, axis=-1) != y
    if skip is not None:
        already = already | skip

    def make_loss(runs, rows):
        target_class = runs // n_restarts + 2
        y_target = order[rows, n_classes - target_class]
        return lambda logits: dlr_targeted(logits, y[rows], y_target)

    x_adv, _ = run_with_restarts(
        make_loss, logits_fn, x, y, key, eps=eps, bounds=bounds, norm=norm, n_iter=n_iter,
        n_runs=n_targets * n_restarts, rho=rho, fooled_init=already, chunk_size=chunk_size,
        tail_chunk_size=tail_chunk_size,
    )
    return _project(norm, x_adv, x, eps, bounds)


@register("apgd_t", norm="linf", test_kwargs={"n_iter": 4, "n_target_classes": 2})
def apgd_t(logits_fn, x, y, key, *, eps, bounds, n_iter=100, n_target_classes=9,
           n_restarts=1, rho=RHO, chunk_size=None, tail_chunk_size=None):
    """APGD-T in the L-inf ball (see :func:`apgd_targeted`)."""
    return apgd_targeted(logits_fn, x, y, key, eps=eps, bounds=bounds, norm="linf", n_iter=n_iter,
                         n_target_classes=n_target_classes, n_restarts=n_restarts, rho=rho,
                         chunk_size=chunk_size, tail_chunk_size=tail_chunk_size)


@register("apgd_t_l2", norm="l2", test_kwargs={"n_iter": 4, "n_target_classes": 2})
def apgd_t_l2(logits_fn, x, y, key, *, eps, bounds, n_iter=100, n_target_classes=9,
              n_restarts=1, rho=RHO, chunk_size=None, tail_chunk_size=None):
    """APGD-T in the L2 ball (see :func:`apgd_targeted`)."""
    return apgd_targeted(logits_fn, x, y, key, eps=eps, bounds=bounds, norm="l2", n_iter=n_iter,
                         n_target_classes=n_target_classes, n_restarts=n_restarts, rho=rho,
                         chunk_size=chunk_size, tail_chunk_size=tail_chunk_size)
