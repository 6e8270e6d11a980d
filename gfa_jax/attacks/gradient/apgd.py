"""APGD: Auto-PGD (Croce & Hein, ICML 2020), L-inf and L2, following ``autoattack/autopgd_base.py``.

Algorithm (per sample, all in one loop over iterations, :func:`loops.while_active`: it ends
once every sample is fooled, by this run or an earlier one):

- random start on the sphere of radius eps (L-inf: ``x + eps * t / ||t||_inf``, t ~ U[-1, 1]; L2:
  ``x + eps * t / ||t||_2``, t ~ N(0, 1)), clipped to the box;
- step size ``eta = 2 * eps``; momentum ``alpha = 0.75`` (1 at the first step)::

      z_{k+1} = P(x_k + eta * sign(g_k))                  (L2: eta * g_k / ||g_k||_2)
      x_{k+1} = P(x_k + alpha (z_{k+1} - x_k) + (1 - alpha)(x_k - x_{k-1}))

- checkpoints ``w_j = ceil(p_j N)``, ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03,
  0.06)``, computed in integer arithmetic exactly as the reference does (first window
  ``max(int(0.22 N), 1)``, each next one ``max(k - max(int(0.03 N), 1), max(int(0.06 N), 1))``); see
  :func:`checkpoint_schedule`. At a checkpoint the step size of a sample is halved when
  (1) its loss increased in at most ``rho * window`` of the steps since the last checkpoint, or
  (2) its step size was not halved at the last checkpoint and its best loss did not improve since;
  a halved sample restarts from its best (max-loss) point and that point's gradient;
- per sample the best loss / max-loss point and the last misclassified point are tracked.

``apgd`` returns, per sample, a misclassified point where one was found (clean misclassified inputs
are returned unchanged, as in the reference), else the max-loss point over restarts. Restarts
(``n_restarts``, static, a while loop that ends once every sample is fooled) attack only the samples
not fooled yet, as the reference does: :func:`run_with_restarts` compacts them into chunks of static
size (on CPU 128 samples; one chunk, the masked full batch, on accelerators), so a fooled or clean
misclassified sample costs nothing.

Deviations from the reference (all minor): the first oscillation window compares the first step's
loss with the loss at the starting point (the reference compares it with a zero-initialised buffer
through a negative index); the non-fooled samples get their max-loss point instead of the clean
input (``best_loss``-style output, more useful outside AutoAttack; AutoAttack only keeps successes);
L1 APGD and EOT are not implemented.
"""
from __future__ import annotations

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
    clip_to_bounds,
    get_loss,
    normalize_l2,
    per_sample_norm,
    project_l2,
    project_linf,
    register,
)

RHO = 0.75
MOMENTUM = 0.75


def checkpoint_schedule(n_iter: int) -> tuple[list[int], list[int]]:
    """Checkpoints of APGD for ``n_iter`` iterations, as in the reference implementation.

    Returns ``(checkpoints, windows)``: ``checkpoints`` are the iteration counts ``w_j`` (1-based:
    a checkpoint ``w`` is evaluated right after the ``w``-th step) and ``windows[j] = w_j - w_{j-1}``.
    For ``n_iter = 100``: ``[22, 41, 57, 70, 80, 87, 93, 99]``.
    """
    n_iter_2 = max(int(0.22 * n_iter), 1)
    n_iter_min = max(int(0.06 * n_iter), 1)
    size_decr = max(int(0.03 * n_iter), 1)
    checkpoints, windows = [], []
    k, count = n_iter_2, 0
    while count + k <= n_iter:
        count += k
        checkpoints.append(count)
        windows.append(k)
        k = max(k - size_decr, n_iter_min)
    return checkpoints, windows


def _schedule_arrays(n_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pass of :func:`apgd_single_run`'s loop (pass 0 evaluates the start, pass ``k`` makes step
    ``k``): is a checkpoint evaluated after it, and the window length there."""
    checkpoints, windows = checkpoint_schedule(n_iter)
    is_ck = np.zeros(n_iter + 1, dtype=bool)
    window = np.ones(n_iter + 1, dtype=np.float32)
    for c, w in zip(checkpoints, windows):
        is_ck[c] = True
        window[c] = w
    return is_ck, window


def _project(norm: str, x_adv: Array, x: Array, eps, bounds: Bounds) -> Array:
    if norm == "linf":
        return project_linf(x_adv, x, eps, bounds)
    if norm == "l2":
        return project_l2(x_adv, x, eps, bounds)
    raise ValueError(f"APGD supports norm 'linf' or 'l2', got {norm!r}")


def _random_start(norm: str, key, x: Array, eps, bounds: Bounds) -> Array:
    if norm == "linf":
        t = random_draws.uniform(key, x.shape, x.dtype, -1.0, 1.0)
    else:
        t = random_draws.normal(key, x.shape, x.dtype)
    return _start_from_noise(norm, t, x, eps, bounds)


def _start_from_noise(norm: str, t: Array, x: Array, eps, bounds: Bounds) -> Array:
    if norm == "linf":
        t = t / (_expand(per_sample_norm(t, "inf"), x) + 1e-12)
    else:
        t = normalize_l2(t)
    return clip_to_bounds(x + _expand(eps, x) * t, bounds)


def run_start(norm: str, key, rows: Array, runs: Array, x: Array, eps, bounds: Bounds, *, batch: int) -> Array:
    """Random starts of rows ``x`` (samples ``rows`` of a batch of ``batch``, in runs ``runs``), each
    drawn from ``key``, its run and its sample index only (:func:`loops.run_keys`): the same whatever
    chunk the row is run in."""

    def noise(k):
        if norm == "linf":
            return random_draws.uniform(k, x.shape[1:], x.dtype, -1.0, 1.0)
        return random_draws.normal(k, x.shape[1:], x.dtype)

    return _start_from_noise(norm, jax.vmap(noise)(loops.run_keys(key, rows, runs, batch)), x, eps, bounds)


def apgd_single_run(
    loss_fn: Callable[[Array], Array],
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key,
    *,
    eps,
    bounds: Bounds,
    norm: str,
    n_iter: int,
    rho: float = RHO,
    targeted_success: bool = False,
    done: Array | None = None,
    x_start: Array | None = None,
    superseded: Callable[[Array], Array] | None = None,
):
    """One APGD run on the whole batch, ending early once every sample is fooled or ``done``.

    Args:
      loss_fn: ``logits [B, K] -> [B]``, the loss to ascend (targets closed over).
      y: labels for the success test: success is ``argmax != y`` (``== y`` if ``targeted_success``).
      done: bool ``[B]``, samples whose result is already settled (fooled by an earlier run); the
        loop (:func:`loops.while_active`) stops once no sample is neither done nor fooled. A sample
        still active runs exactly the iterations it would without the early stop; a fooled one keeps
        a misclassified ``x_best_adv``.
      x_start: the starting points; ``None``: a random start drawn with ``key``.
      superseded: ``fooled [B] -> bool [B]``, samples to stop as well, given which are fooled (rows
        whose sample an earlier run's row of a packed chunk fooled: :func:`loops.for_active_runs`).

    Returns ``(x_max_loss, fooled, loss_best, x_best_adv)`` like the reference's
    ``attack_single_run`` (``fooled = ~acc``).
    """
    b = x.shape[0]
    eps_b = jnp.broadcast_to(jnp.asarray(eps, x.dtype), (b,))
    is_ck_np, window_np = _schedule_arrays(n_iter)
    is_ck_arr = jnp.asarray(is_ck_np)
    window_arr = jnp.asarray(window_np)

    def evaluate(x_):
        def f(z):
            logits = logits_fn(z)
            return loss_fn(logits), logits

        values, vjp, logits = jax.vjp(f, x_, has_aux=True)
        (grad,) = vjp(jnp.ones_like(values))
        return values, logits, grad

    def success(logits):
        pred = jnp.argmax(logits, axis=-1)
        return (pred == y) if targeted_success else (pred != y)

    def step(x_adv, grad, step_size):
        s = _expand(step_size, x)
        if norm == "linf":
            return x_adv + s * jnp.sign(grad)
        return x_adv + s * normalize_l2(grad)

    x0 = _random_start(norm, key, x, eps_b, bounds) if x_start is None else x_start
    done = jnp.zeros((b,), bool) if done is None else done
    # Pass 0 of the loop evaluates the start (no step), pass k makes step k: the model's gradient
    # appears once in the program, not also before the loop (a second copy of the model's forward
    # and backward was 35 of the paper CNN's 191 APGD-CE kernels, 0.4-0.9 s of its compile time).
    # The state's gradients and losses are placeholders until pass 0 sets them.
    per_sample = jnp.zeros((b,), x.dtype)
    state = dict(
        i=jnp.asarray(0, jnp.int32),
        x_adv=x0,
        x_old=x0,
        grad=jnp.zeros_like(x0),
        step_size=2.0 * eps_b,
        x_best=x0,
        grad_best=jnp.zeros_like(x0),
        loss_best=per_sample,
        x_best_adv=x0,
        fooled=jnp.zeros((b,), bool),
        loss_prev=per_sample,
        n_inc=per_sample,
        loss_best_last=per_sample,
        reduced_last=jnp.ones((b,), bool),
    )

    def body(st):
        i = st["i"]
        start = i == 0
        x_adv = st["x_adv"]
        grad2 = x_adv - st["x_old"]
        a = jnp.where(i > 1, MOMENTUM, 1.0).astype(x.dtype)
        z = _project(norm, step(x_adv, st["grad"], st["step_size"]), x, eps_b, bounds)
        x_new = _project(norm, x_adv + (z - x_adv) * a + grad2 * (1.0 - a), x, eps_b, bounds)
        x_new = jnp.where(start, x_adv, x_new)

        loss, logits, grad = evaluate(x_new)
        wrong = success(logits)
        fooled = st["fooled"] | wrong
        x_best_adv = jnp.where(_expand(wrong, x), x_new, st["x_best_adv"])

        n_inc = st["n_inc"] + ((loss > st["loss_prev"]) & ~start).astype(x.dtype)
        improved = (loss > st["loss_best"]) | start
        imp_b = _expand(improved, x)
        x_best = jnp.where(imp_b, x_new, st["x_best"])
        grad_best = jnp.where(imp_b, grad, st["grad_best"])
        loss_best = jnp.where(improved, loss, st["loss_best"])

        # checkpoint (the precomputed boolean array says whether pass i ends a window)
        is_ck = is_ck_arr[i]
        osc = n_inc <= window_arr[i] * rho
        no_impr = (~st["reduced_last"]) & (st["loss_best_last"] >= loss_best)
        reduce = is_ck & (osc | no_impr)
        red_b = _expand(reduce, x)
        return dict(
            i=i + 1,
            x_adv=jnp.where(red_b, x_best, x_new),
            x_old=x_adv,
            grad=jnp.where(red_b, grad_best, grad),
            step_size=jnp.where(reduce, st["step_size"] / 2.0, st["step_size"]),
            x_best=x_best,
            grad_best=grad_best,
            loss_best=loss_best,
            x_best_adv=x_best_adv,
            fooled=fooled,
            loss_prev=loss,
            n_inc=jnp.where(is_ck, jnp.zeros_like(n_inc), n_inc),
            loss_best_last=jnp.where(is_ck | start, loss_best, st["loss_best_last"]),
            reduced_last=jnp.where(is_ck, reduce, st["reduced_last"]),
        )

    def active(st):
        stopped = done | st["fooled"]
        return ~(stopped if superseded is None else stopped | superseded(st["fooled"]))

    st = loops.while_active(body, state, max_steps=n_iter + 1, active=active)
    return st["x_best"], st["fooled"], st["loss_best"], st["x_best_adv"]


def run_with_restarts(
    make_loss: Callable[[Array, Array], Callable[[Array], Array]],
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key,
    *,
    eps,
    bounds: Bounds,
    norm: str,
    n_iter: int,
    n_runs: int,
    rho: float = RHO,
    targeted_success: bool = False,
    fooled_init: Array | None = None,
    chunk_size: int | None = None,
    tail_chunk_size: int | None = None,
):
    """Up to ``n_runs`` APGD runs (:func:`loops.for_active_runs`: ends early once every sample is
    fooled); run ``r`` ascends ``make_loss(runs, rows)`` (``rows``: the indices into the batch of the
    samples a chunk holds, ``runs``: each row's run, both int ``[chunk]``, to pick labels or targets).

    Each run attacks only the samples not fooled yet (by an earlier run or ``fooled_init``), in
    chunks of ``chunk_size`` samples (``None``: see :func:`loops.chunk_rows`; those left over after
    full chunks in chunks of ``tail_chunk_size``, ``None``: :func:`loops.tail_chunk_rows`), as the
    reference attacks only the still-robust subset; with few samples left, several runs share a chunk.
    A sample's random start in a run is drawn from the run and the sample (:func:`run_start`), so
    its trajectory does not depend on the chunking. Returns ``(x_adv, fooled)`` where ``x_adv`` is
    the first successful point, else the max-loss point over runs.
    """
    b = x.shape[0]
    fooled0 = jnp.zeros(b, bool) if fooled_init is None else fooled_init
    eps_b = jnp.broadcast_to(jnp.asarray(eps, x.dtype), (b,))
    chunk = loops.chunk_rows(b, chunk_size)

    def run_rows(rows, runs, valid, x_start, superseded):
        return apgd_single_run(
            make_loss(runs, rows), logits_fn, x[rows], y[rows], None, eps=eps_b[rows], bounds=bounds, norm=norm,
            n_iter=n_iter, rho=rho, targeted_success=targeted_success, done=~valid, x_start=x_start,
            superseded=superseded,
        )

    def record(results, rows, valid, outputs):
        x_adv, fooled, x_maxloss, loss_max = (a[rows] for a in results)
        x_best, run_fooled, loss_best, x_best_adv = outputs
        first = run_fooled & ~fooled  # a sample keeps the point of its first successful run
        x_adv = jnp.where(_expand(first, x_best), x_best_adv, x_adv)
        better = loss_best > loss_max
        x_maxloss = jnp.where(_expand(better, x_best), x_best, x_maxloss)
        loss_max = jnp.where(better, loss_best, loss_max)
        return loops.scatter_rows(results, rows, valid, (x_adv, fooled | run_fooled, x_maxloss, loss_max))

    init = (x, fooled0, x, jnp.full((b,), -jnp.inf, x.dtype))
    x_adv, fooled, x_maxloss, _ = loops.for_active_runs(
        run_rows, record, init, active=lambda results: ~results[1], n_runs=n_runs, chunk_size=chunk,
        tail_chunk_size=loops.tail_chunk_rows(chunk, tail_chunk_size),
        row_inputs=lambda rows, runs: run_start(norm, key, rows, runs, x[rows], eps_b[rows], bounds, batch=b))
    return jnp.where(_expand(fooled, x), x_adv, x_maxloss), fooled


def apgd(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key,
    *,
    eps,
    bounds: Bounds,
    loss: str = "ce",
    norm: str = "linf",
    n_iter: int = 100,
    n_restarts: int = 1,
    rho: float = RHO,
    targeted: bool = False,
    chunk_size: int | None = None,
    skip: Array | None = None,
    tail_chunk_size: int | None = None,
) -> Array:
    """APGD (Croce & Hein 2020) with loss 'ce', 'dlr' or 'mse' (any loss of :mod:`base`).

    Args:
      norm: 'linf' or 'l2' (static).
      n_iter, n_restarts: static.
      rho: threshold of the oscillation condition.
      targeted: if True, ``y`` are target labels, the loss is descended and success is ``argmax == y``.
      chunk_size, tail_chunk_size: samples per chunk of the compacted runs, and per chunk of those
        left over after full chunks (static; see :func:`run_with_restarts`).
      skip: bool ``[B]``, samples not to attack (returned unchanged; no compute is spent on them),
        e.g. those an earlier attack already fooled.

    Returns ``x_adv`` in ``bounds`` and the eps ball: per sample the first misclassified point found
    (clean misclassified inputs unchanged), else the max-loss point.
    """
    base_loss = get_loss(loss)
    sign = -1.0 if targeted else 1.0

    def make_loss(_runs, rows):
        return lambda logits: sign * base_loss(logits, y[rows])

    pred = jnp.argmax(logits_fn(x), axis=-1)
    already = (pred == y) if targeted else (pred != y)
    if skip is not None:
        already = already | skip
    x_adv, _ = run_with_restarts(
        make_loss, logits_fn, x, y, key, eps=eps, bounds=bounds, norm=norm, n_iter=n_iter,
        n_runs=n_restarts, rho=rho, targeted_success=targeted, fooled_init=already, chunk_size=chunk_size,
        tail_chunk_size=tail_chunk_size,
    )
    return _project(norm, x_adv, x, eps, bounds)


@register("apgd", norm="linf", test_kwargs={"n_iter": 5})
def apgd_linf(logits_fn, x, y, key, *, eps, bounds, loss="ce", n_iter=100, n_restarts=1,
              rho=RHO, targeted=False, chunk_size=None, tail_chunk_size=None):
    """APGD in the L-inf ball (see :func:`apgd`)."""
    return apgd(logits_fn, x, y, key, eps=eps, bounds=bounds, loss=loss, norm="linf", n_iter=n_iter,
                n_restarts=n_restarts, rho=rho, targeted=targeted, chunk_size=chunk_size,
                tail_chunk_size=tail_chunk_size)


@register("apgd_l2", norm="l2", test_kwargs={"n_iter": 5})
def apgd_l2(logits_fn, x, y, key, *, eps, bounds, loss="ce", n_iter=100, n_restarts=1,
            rho=RHO, targeted=False, chunk_size=None, tail_chunk_size=None):
    """APGD in the L2 ball (see :func:`apgd`)."""
    return apgd(logits_fn, x, y, key, eps=eps, bounds=bounds, loss=loss, norm="l2", n_iter=n_iter,
                n_restarts=n_restarts, rho=rho, targeted=targeted, chunk_size=chunk_size,
                tail_chunk_size=tail_chunk_size)
