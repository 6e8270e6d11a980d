"""FAB: Fast Adaptive Boundary attack (Croce & Hein, ICML 2020), L-inf, untargeted and targeted
(FAB-T, the variant AutoAttack runs), following ``autoattack/fab_base.py`` / ``fab_pt.py`` and
``fab_projections.projection_linf``.

Each iteration linearises the classifier at ``x1``: untargeted, the class ``j`` whose linearised
boundary ``f_j - f_y = 0`` is closest in L-inf (``|df_j| / ||dg_j||_1``); targeted, the boundary with
the target class (``t`` = the ``target_class``-th most likely clean class, 2 .. n_target_classes+1).
It projects both ``x1`` and the original ``x0`` onto that hyperplane intersected with the box
(``projection_linf``: the exact sort-and-bisection projection of the reference), and moves to::

    x1 <- clip((x1 + eta d1) (1 - alpha) + (x0 + eta d2) alpha),  alpha = min(|d1| / (|d1| + |d2|), alpha_max)

Whenever ``x1`` is misclassified its norm is compared with the best so far (kept if smaller) and
``x1`` steps back towards ``x0``: ``x1 <- x0 + beta (x1 - x0)``. Restarts after the first start at
``x0 + min(best, eps) * 0.5 * t / ||t||_inf``, t ~ U[-1, 1]. ``alpha_max = 0.1, eta = 1.05, beta = 0.9``.

Two entry points:

- :func:`fab_minimum_norm` returns a :class:`MinNormResult` (smallest perturbation over all runs),
  not registered.
- ``fab`` / ``fab_t`` (registered, bounded): as in the reference's ``perturb``, a run's result counts
  only if it is misclassified and within eps; per sample the first such result is kept (later
  runs/targets cannot overwrite it), samples never fooled within eps (and clean misclassified ones)
  are returned unchanged.

Implementation notes / deviations: the box is handled by mapping ``bounds`` affinely to ``[0, 1]`` (the
reference's projection assumes a ``[0, 1]`` box; L-inf distances scale uniformly, so this is exact);
each (target, restart) run attacks only the samples still to attack (bounded: not fooled within eps
yet; clean misclassified ones never), compacted into chunks of static size, several runs to a chunk
once few samples are left (:func:`loops.for_active_runs`; the reference indexes the still-robust
subset), with ``jnp.where``
updates inside a chunk (loops over iterations and over runs, ``lax.fori_loop`` for the projection's
bisection; bounded FAB stops a run, and the runs, once every sample is fooled within eps: same
per-sample success); the untargeted
Jacobian is computed with one VJP per class (``vmap``); ``n_target_classes`` is clipped to ``K - 1``.
L2 and L1 FAB are not implemented.
"""
from __future__ import annotations

import concurrent.futures
import functools
import math
import os
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
    MinNormResult,
    _expand,
    per_sample_norm,
    project_linf,
    register,
)

ALPHA_MAX = 0.1
ETA = 1.05
BETA = 0.9
BIG = 1e10


def argsort_rows(values: Array) -> Array:
    """``jnp.argsort(values, axis=-1)`` (stable, int32); on CPU computed by NumPy (:func:`_argsort_rows_numpy`).

    Why: XLA:CPU sorts through a comparator call per comparison: ``[512, 3072]`` (one FAB iteration on
    a CIFAR batch of 256) took 336 ms, NumPy's stable argsort 88 ms, the keyed sort below 28 ms on one
    thread and 13 ms on two, and FAB sorts one such array every iteration. Same indices; elsewhere
    XLA's sort.
    """
    if jax.default_backend() != "cpu":
        return jnp.argsort(values, axis=-1)
    if values.shape[-1] >= 2**31:
        raise ValueError(f"argsort_rows sorts rows of fewer than 2**31 values, got {values.shape[-1]}")
    return jax.pure_callback(
        _argsort_rows_numpy, jax.ShapeDtypeStruct(values.shape, jnp.int32), values, vmap_method="expand_dims")


def _argsort_rows_numpy(values: np.ndarray) -> np.ndarray:
    """Stable argsort of each row. float32: a plain sort of int64 keys ``(order-preserving int32 image
    of the value) << 32 | column``: distinct keys, so any sort gives the stable order, and NumPy sorts
    int64 with SIMD, 3x faster than its stable argsort; the rows are split over the CPU's cores
    (NumPy releases the GIL while sorting). Other dtypes: NumPy's stable argsort."""
    values = np.asarray(values)
    if values.dtype != np.float32:  # the keys below are for float32
        return np.argsort(values, axis=-1, kind="stable").astype(np.int32)
    rows = values.reshape(-1, values.shape[-1])
    n_blocks = max(1, min(len(rows), os.cpu_count() or 1))
    if n_blocks == 1:
        order = _sort_keyed(rows)
    else:
        blocks = np.array_split(rows, n_blocks)
        order = np.concatenate(list(_sort_pool(os.getpid()).map(_sort_keyed, blocks)))
    return order.reshape(values.shape)


def _sort_keyed(values: np.ndarray) -> np.ndarray:
    bits = (values + np.float32(0.0)).view(np.int32)  # + 0.0: -0.0 sorts with 0.0, as in argsort
    monotone = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # negative floats: flip the magnitude bits
    keys = (monotone.astype(np.int64) << 32) | np.arange(values.shape[-1], dtype=np.int64)
    keys.sort(axis=-1)
    return (keys & 0xFFFFFFFF).astype(np.int32)


@functools.lru_cache(maxsize=1)
def _sort_pool(pid: int) -> concurrent.futures.ThreadPoolExecutor:
    """The sorting threads of process ``pid`` (a forked child gets its own: it inherits no threads)."""
    del pid
    return concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="gfa-jax-sort")


def projection_linf(t: Array, w: Array, b: Array) -> Array:
    """L-inf projection of the points ``t [N, D]`` (in ``[0, 1]^D``) onto ``{z : w.z = b} ∩ [0, 1]^D``.

    Returns the displacement ``d`` (``t + d`` is the projection; where the hyperplane does not meet the
    box, the displacement towards the box corner that gets closest). Port of the reference's
    ``projection_linf`` with masks instead of boolean indexing.
    """
    n, dim = w.shape
    sign = jnp.where(jnp.sum(w * t, axis=1) - b >= 0, 1.0, -1.0).astype(w.dtype)
    w = w * sign[:, None]
    b = b * sign
    a = (w < 0).astype(w.dtype)
    nz = (w != 0).astype(w.dtype)
    d = (a - t) * nz
    p = a - t * (2.0 * a - 1.0)
    indp = argsort_rows(p)
    b = b - jnp.sum(w * t, axis=1)
    b0 = jnp.sum(w * d, axis=1)
    indp2 = jnp.flip(indp, axis=1)
    ws = jnp.take_along_axis(w, indp2, axis=1)
    bs2 = -ws * jnp.take_along_axis(d, indp2, axis=1)
    s = jnp.cumsum(jnp.abs(ws), axis=1)
    sb = jnp.cumsum(bs2, axis=1) + b0[:, None]

    b2 = sb[:, -1] - s[:, -1] * jnp.take_along_axis(p, indp[:, :1], axis=1)[:, 0]
    c_l = b - b2 > 0
    c2 = (b - b0 > 0) & (b - b2 <= 0)

    def bisect(_, lu):
        lb, ub = lu
        counter4 = jnp.floor((lb + ub) / 2.0)
        counter2 = counter4.astype(jnp.int32)[:, None]
        indcurr = jnp.take_along_axis(indp, dim - 1 - counter2, axis=1)
        b2_ = (jnp.take_along_axis(sb, counter2, axis=1)
               - jnp.take_along_axis(s, counter2, axis=1) * jnp.take_along_axis(p, indcurr, axis=1))[:, 0]
        c = b - b2_ > 0
        return jnp.where(c, counter4, lb), jnp.where(c, ub, counter4)

    nitermax = max(math.ceil(math.log2(dim)), 0) if dim > 1 else 0
    lb0 = jnp.zeros((n,), w.dtype)
    ub0 = jnp.full((n,), dim - 1, w.dtype)
    lb, _ = jax.lax.fori_loop(0, nitermax, bisect, (lb0, ub0))
    lb = lb.astype(jnp.int32)[:, None]

    def safe_div(num, den):
        return num / jnp.where(den == 0, 1.0, den)

    lmbd_l = jnp.maximum(safe_div(b - sb[:, -1], -s[:, -1]), 0.0)[:, None]
    d_l = (2.0 * a - 1.0) * lmbd_l
    sb_lb = jnp.take_along_axis(sb, lb, axis=1)[:, 0]
    s_lb = jnp.take_along_axis(s, lb, axis=1)[:, 0]
    lmbd_2 = jnp.maximum(safe_div(b - sb_lb, -s_lb), 0.0)[:, None]
    d_2 = jnp.minimum(lmbd_2, d) * a + jnp.maximum(-lmbd_2, d) * (1.0 - a)
    d = jnp.where(c_l[:, None], d_l, jnp.where(c2[:, None], d_2, d))
    return d * nz


def _fab_single_run(logits_fn: LogitsFn, x0: Array, y: Array, y_target: Array | None, x_init: Array, *,
                    n_iter: int, alpha_max: float, eta: float, beta: float,
                    stop: tuple[Array, Array] | None = None,
                    superseded: Callable[[Array], Array] | None = None):
    """One FAB run in the ``[0, 1]`` box on the whole batch: returns ``(adv, res)`` (``res = BIG`` where
    nothing adversarial was found, ``adv = x0`` there).

    ``stop = (done, radius)`` (bounded FAB): the run ends early once every sample is ``done`` (settled
    by an earlier run) or has a result within ``radius`` (:func:`loops.while_active`); a sample still
    without one runs exactly the iterations it would otherwise. ``None``: all ``n_iter`` iterations.
    ``superseded`` (with ``stop``): ``within_radius [B] -> bool [B]``, samples to stop as well
    (:func:`loops.for_active_runs`).
    """
    bsz = x0.shape[0]
    flat0 = x0.reshape(bsz, -1)

    def diff_logits_grads(x1):
        logits, vjp = jax.vjp(logits_fn, x1)
        n_cls = logits.shape[-1]
        if y_target is not None:
            oh = jax.nn.one_hot(y_target, n_cls, dtype=logits.dtype) - jax.nn.one_hot(y, n_cls, dtype=logits.dtype)
            df = jnp.sum(logits * oh, axis=-1)[:, None]  # -(z_y - z_t)
            (g,) = vjp(oh)
            return df, g.reshape(bsz, 1, -1)
        eye = jnp.broadcast_to(jnp.eye(n_cls, dtype=logits.dtype)[:, None, :], (n_cls, bsz, n_cls))
        (jac,) = jax.vmap(vjp)(eye)  # [K, B, ...]
        jac = jnp.moveaxis(jac.reshape(n_cls, bsz, -1), 0, 1)  # [B, K, D]
        z_y = jnp.take_along_axis(logits, y[:, None], axis=1)
        g_y = jnp.take_along_axis(jac, y[:, None, None], axis=1)
        df = logits - z_y
        df = jnp.where(jax.nn.one_hot(y, n_cls, dtype=bool), BIG, df)
        return df, jac - g_y

    def body(_, carry):
        x1, adv, res2 = carry
        df, dg = diff_logits_grads(x1)
        dist1 = jnp.abs(df) / (1e-12 + jnp.sum(jnp.abs(dg), axis=-1))
        ind = jnp.argmin(dist1, axis=1)
        dg2 = jnp.take_along_axis(dg, ind[:, None, None], axis=1)[:, 0]  # [B, D]
        df2 = jnp.take_along_axis(df, ind[:, None], axis=1)[:, 0]
        flat1 = x1.reshape(bsz, -1)
        bb = -df2 + jnp.sum(dg2 * flat1, axis=-1)
        d3 = projection_linf(jnp.concatenate([flat1, flat0], 0), jnp.concatenate([dg2, dg2], 0),
                             jnp.concatenate([bb, bb], 0))
        d1 = d3[:bsz].reshape(x0.shape)
        d2 = d3[bsz:].reshape(x0.shape)
        a0 = jnp.maximum(jnp.max(jnp.abs(d3), axis=1), 1e-8)
        a1, a2 = a0[:bsz], a0[bsz:]
        alpha = _expand(jnp.clip(a1 / (a1 + a2), 0.0, alpha_max), x0)
        x1 = jnp.clip((x1 + eta * d1) * (1.0 - alpha) + (x0 + d2 * eta) * alpha, 0.0, 1.0)

        is_adv = jnp.argmax(logits_fn(x1), axis=-1) != y
        t = per_sample_norm(x1 - x0, "inf")
        better = is_adv & (t < res2)
        adv = jnp.where(_expand(better, x0), x1, adv)
        res2 = jnp.where(better, t, res2)
        x1 = jnp.where(_expand(is_adv, x0), x0 + (x1 - x0) * beta, x1)
        return x1, adv, res2

    init = (x_init, x0, jnp.full((bsz,), BIG, x0.dtype))
    if stop is None:
        _, adv, res2 = loops.fori_loop(0, n_iter, body, init)
    else:
        done, radius = stop

        def active(carry):
            within = carry[2] <= radius
            stopped = done | within
            return ~(stopped if superseded is None else stopped | superseded(within))

        _, adv, res2 = loops.while_active(lambda carry: body(None, carry), init, max_steps=n_iter, active=active)
    return adv, res2


def _fab_runs(logits_fn: LogitsFn, x: Array, y: Array, key, *, eps, bounds: Bounds, targeted: bool,
              n_iter: int, n_restarts: int, n_target_classes: int, alpha_max: float, eta: float, beta: float,
              bounded: bool, chunk_size: int | None = None, skip: Array | None = None):
    lo, hi = float(bounds[0]), float(bounds[1])
    scale = hi - lo
    f01 = lambda u: logits_fn(lo + scale * u)  # noqa: E731
    u0 = (x - lo) / scale
    bsz = x.shape[0]
    eps_u = jnp.broadcast_to(jnp.asarray(eps, x.dtype), (bsz,)) / scale

    clean_logits = logits_fn(x)
    n_cls = clean_logits.shape[-1]
    clean_wrong = jnp.argmax(clean_logits, axis=-1) != y
    order = jnp.argsort(clean_logits, axis=-1)
    n_targets = min(n_target_classes, n_cls - 1) if targeted else 1
    n_runs = n_targets * n_restarts
    settled0 = clean_wrong if skip is None else clean_wrong | skip
    chunk = loops.chunk_rows(bsz, chunk_size)

    def run_start(rows, runs):
        u = u0[rows]
        if n_restarts == 1:  # every run starts at the clean point: nothing to draw
            return u
        tr = jax.vmap(lambda k: random_draws.uniform(k, x.shape[1:], x.dtype, -1.0, 1.0))(
            loops.run_keys(key, rows, runs, bsz))
        tr = tr / _expand(per_sample_norm(tr, "inf") + 1e-12, u)
        rand_init = jnp.clip(u + _expand(eps_u[rows], u) * tr * 0.5, 0.0, 1.0)
        return jnp.where(_expand(runs % n_restarts > 0, u), rand_init, u)

    def run_rows(rows, runs, valid, x_init, superseded):
        target_class = runs // n_restarts + 2
        y_target = order[rows, n_cls - target_class] if targeted else None
        stop = (~valid, eps_u[rows]) if bounded else None
        return _fab_single_run(f01, u0[rows], y[rows], y_target, x_init, n_iter=n_iter, alpha_max=alpha_max,
                               eta=eta, beta=beta, stop=stop, superseded=superseded if bounded else None)

    def record(results, rows, valid, outputs):
        best_u, best_res, fooled = (a[rows] for a in results)
        adv, res = outputs
        found = res < BIG
        # bounded: the first run that finds a point within eps settles the sample
        better = found & (res <= eps_u[rows]) & ~fooled if bounded else found & (res < best_res)
        best_u = jnp.where(_expand(better, adv), adv, best_u)
        best_res = jnp.where(better, res, best_res)
        return loops.scatter_rows(results, rows, valid, (best_u, best_res, fooled | better))

    # bounded: a sample fooled within eps is settled (the runs end once every sample is)
    active = (lambda results: ~(results[2] | settled0)) if bounded else (lambda _results: ~settled0)
    init = (u0, jnp.full((bsz,), jnp.inf, x.dtype), jnp.zeros((bsz,), bool))
    best_u, best_res, fooled = loops.for_active_runs(run_rows, record, init, active=active, n_runs=n_runs,
                                                     chunk_size=chunk, row_inputs=run_start)
    x_adv = jnp.clip(lo + scale * best_u, lo, hi)
    x_adv = jnp.where(_expand(fooled, x), x_adv, x)
    return x_adv, fooled


def fab_minimum_norm(logits_fn: LogitsFn, x: Array, y: Array, key, *, eps=0.3, bounds: Bounds,
                     targeted: bool = False, n_iter: int = 100, n_restarts: int = 1, n_target_classes: int = 9,
                     alpha_max: float = ALPHA_MAX, eta: float = ETA, beta: float = BETA,
                     chunk_size: int | None = None) -> MinNormResult:
    """FAB (L-inf) as a minimum-norm attack: the smallest misclassified perturbation over all runs.

    ``eps`` only sets the radius of the random restarts. ``y`` are the true labels (``targeted`` picks
    FAB-T's targets among the top classes). Clean misclassified inputs: ``success=False``.
    ``chunk_size``: samples per chunk of each run (static; see :func:`loops.chunk_rows`).
    """
    x_adv, success = _fab_runs(logits_fn, x, y, key, eps=eps, bounds=bounds, targeted=targeted, n_iter=n_iter,
                               n_restarts=n_restarts, n_target_classes=n_target_classes, alpha_max=alpha_max,
                               eta=eta, beta=beta, bounded=False, chunk_size=chunk_size)
    norm = jnp.where(success, per_sample_norm(x_adv - x, "inf"), jnp.inf)
    return MinNormResult(x_adv, success, norm)


def fab_bounded(logits_fn: LogitsFn, x: Array, y: Array, key, *, eps, bounds: Bounds,
                targeted: bool = False, n_iter: int = 100, n_restarts: int = 1, n_target_classes: int = 9,
                alpha_max: float = ALPHA_MAX, eta: float = ETA, beta: float = BETA,
                chunk_size: int | None = None, skip: Array | None = None) -> Array:
    """FAB (L-inf) as used by AutoAttack: first result within eps kept, others returned unchanged.

    Each run attacks only the samples not yet fooled within eps (nor clean misclassified, nor in
    ``skip``: returned unchanged, no compute spent), compacted into chunks of ``chunk_size``
    (static; see :func:`loops.chunk_rows`)."""
    x_adv, _ = _fab_runs(logits_fn, x, y, key, eps=eps, bounds=bounds, targeted=targeted, n_iter=n_iter,
                         n_restarts=n_restarts, n_target_classes=n_target_classes, alpha_max=alpha_max, eta=eta,
                         beta=beta, bounded=True, chunk_size=chunk_size, skip=skip)
    return project_linf(x_adv, x, eps, bounds)


@register("fab", norm="linf", test_kwargs={"n_iter": 4})
def fab(logits_fn, x, y, key, *, eps, bounds, n_iter=100, n_restarts=1, alpha_max=ALPHA_MAX,
        eta=ETA, beta=BETA, chunk_size=None):
    """Untargeted FAB (L-inf), bounded: see :func:`fab_bounded`."""
    return fab_bounded(logits_fn, x, y, key, eps=eps, bounds=bounds, targeted=False, n_iter=n_iter,
                       n_restarts=n_restarts, alpha_max=alpha_max, eta=eta, beta=beta, chunk_size=chunk_size)


@register("fab_t", norm="linf", test_kwargs={"n_iter": 4, "n_target_classes": 2})
def fab_t(logits_fn, x, y, key, *, eps, bounds, n_iter=100, n_restarts=1, n_target_classes=9,
          alpha_max=ALPHA_MAX, eta=ETA, beta=BETA, chunk_size=None):
    """FAB-T (targeted FAB over the top ``n_target_classes`` classes, L-inf), bounded: see :func:`fab_bounded`."""
    return fab_bounded(logits_fn, x, y, key, eps=eps, bounds=bounds, targeted=True, n_iter=n_iter,
                       n_restarts=n_restarts, n_target_classes=n_target_classes, alpha_max=alpha_max, eta=eta,
                       beta=beta, chunk_size=chunk_size)
