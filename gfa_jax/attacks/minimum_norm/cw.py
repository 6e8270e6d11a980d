"""Carlini & Wagner L2 attack (IEEE S&P 2017), following the authors' ``nn_robust_attacks/l2_attack.py``.

For each sample, with ``x' = tanh(w) * (hi - lo) / 2 + (hi + lo) / 2`` (so ``x'`` is always inside
``bounds``), Adam minimises::

    ||x' - x||_2^2 + c * max(Z_y - max_{j != y} Z_j + kappa, 0)        (untargeted)
    ||x' - x||_2^2 + c * max(max_{j != t} Z_j - Z_t + kappa, 0)        (targeted, y = t)

(the paper's ``f = max(., -kappa)`` shifted by ``kappa``: same minimiser), starting from ``w`` with
``x' = x`` at every binary-search step (fresh Adam state). ``c`` is found per sample by the
reference's search: starting at ``initial_const``; after a search step that found an adversarial,
``upper = min(upper, c)``, else ``lower = max(lower, c)``; then ``c = (lower + upper) / 2`` once an
upper bound exists, else ``c *= 10``. Across all iterations and search steps the smallest-L2 iterate
that is adversarial (``argmax(Z + kappa * onehot(y)) != y``, or ``argmax(Z - kappa * onehot(t)) == t``)
is kept. Both loops are ``lax`` loops; everything is per sample (Adam included), so a batch gives
the same result as its samples one at a time. Since a sample can stop only on a check step, the
iterations between two checks run on the samples still active, compacted into chunks
(:func:`gfa_jax.attacks.loops.for_active_segments`): a sample that stopped costs nothing, where the
reference keeps computing its gradient until the whole batch stops.

Defaults: ``binary_search_steps=9``, ``initial_const=1e-3``, ``learning_rate=1e-2``, ``kappa=0`` and
``abort_early=True`` as in the reference; ``steps=1000`` (the reference uses 10000; with early abort
1000 is enough for converged results on typical models and bounds the worst case to 9000 gradient
evaluations; raise it for reference-grade numbers).

Deviations from the reference: the early-abort test (every ``steps // 10`` iterations, stop when
the loss did not fall below 0.9999 of its value at the previous check) is per sample instead of on
the batch's total loss, so samples don't influence each other; distances are measured to ``x``
itself rather than to ``tanh(arctanh(x * 0.999999))``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from gfa_jax.attacks import loops
from gfa_jax.attacks.base import (
    Array,
    Bounds,
    LogitsFn,
    MinNormResult,
    _expand,
    register,
)


def _sq_l2(v: Array) -> Array:
    return jnp.sum(jnp.square(v.reshape(v.shape[0], -1)), axis=-1)


def cw_margin_terms(logits: Array, y: Array, kappa: Array, targeted: bool) -> tuple[Array, Array]:
    """``(hinge [B], adversarial [B] bool)``: the C&W loss term ``max(., 0)`` and the success test."""
    onehot = jax.nn.one_hot(y, logits.shape[-1], dtype=bool)
    real = jnp.sum(jnp.where(onehot, logits, 0.0), axis=-1)
    other = jnp.max(jnp.where(onehot, -jnp.inf, logits), axis=-1)
    if targeted:
        hinge = jnp.maximum(other - real + kappa, 0.0)
        adv = jnp.argmax(logits - kappa * onehot, axis=-1) == y
    else:
        hinge = jnp.maximum(real - other + kappa, 0.0)
        adv = jnp.argmax(logits + kappa * onehot, axis=-1) != y
    return hinge, adv


def stall_check(i: Array, loss: Array, prev: Array, check_every: int, abort_early: bool) -> tuple[Array, Array]:
    """The reference's early abort, per sample: ``(stopping [B], prev)``. Every ``check_every``
    iterations a sample stops if its loss did not fall below 0.9999 of its value at the previous
    check; the reference then breaks before recording that iterate."""
    if not abort_early:
        return jnp.zeros(loss.shape, bool), prev
    check = (i % check_every) == 0
    return check & (loss > prev * 0.9999), jnp.where(check, loss, prev)


def binary_search_update(const, lower, upper, found):
    """The reference's per-sample update of ``c`` after one binary-search step."""
    upper = jnp.where(found, jnp.minimum(upper, const), upper)
    lower = jnp.where(found, lower, jnp.maximum(lower, const))
    const = jnp.where(upper < 1e9, 0.5 * (lower + upper), const * 10.0)
    return const, lower, upper


@register("cw_l2", norm="l2", kind="minimum_norm", test_kwargs={"steps": 10, "binary_search_steps": 2})
def cw_l2(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array | None = None,
    *,
    bounds: Bounds,
    targeted: bool = False,
    kappa: float = 0.0,
    initial_const: float = 1e-3,
    binary_search_steps: int = 9,
    steps: int = 1000,
    learning_rate: float = 1e-2,
    abort_early: bool = True,
    chunk_size: int | None = None,
    tail_chunk_size: int | None = None,
) -> MinNormResult:
    """Carlini-Wagner L2 (see the module docstring). ``key`` is unused (deterministic attack).

    Args:
      targeted: if True, ``y`` holds target labels and success means ``argmax == y``.
      kappa: confidence margin (reference ``CONFIDENCE``).
      initial_const: first ``c`` of the binary search (reference 1e-3).
      binary_search_steps: number of ``c`` values tried per sample (reference 9; with >= 10 the last
        step uses the upper bound, as the reference's ``repeat``).
      steps: Adam iterations per binary-search step (reference 10000).
      learning_rate: Adam step size on ``w`` (reference 1e-2).
      abort_early: stop a sample's optimisation when its loss stalls (checked every steps // 10).
      chunk_size: samples per chunk of the compacted iterations (see the module docstring; ``None``:
        :func:`gfa_jax.attacks.loops.chunk_rows`).
      tail_chunk_size: chunk size for the samples left over after full chunks (``None``:
        :func:`gfa_jax.attacks.loops.tail_chunk_rows`).

    Returns:
      :class:`MinNormResult` with ``norm`` the L2 distance (``inf`` and ``x_adv = x`` on failure).
    """
    del key
    lo, hi = float(bounds[0]), float(bounds[1])
    scale, shift = (hi - lo) / 2.0, (hi + lo) / 2.0
    dtype = x.dtype
    batch = x.shape[0]
    w0 = jnp.arctanh(jnp.clip((x - shift) / scale, -1.0, 1.0) * 0.999999)
    kappa = jnp.asarray(kappa, dtype)
    tx = optax.adam(learning_rate)
    check_every = max(steps // 10, 1) if abort_early else steps
    repeat = binary_search_steps >= 10
    chunk = loops.chunk_rows(batch, chunk_size)
    tail_chunk = loops.tail_chunk_rows(chunk, tail_chunk_size)

    def to_x(w):
        return jnp.tanh(w) * scale + shift

    def objective(w, const, x, y):
        x_new = to_x(w)
        dist = _sq_l2(x_new - x)
        hinge, adv = cw_margin_terms(logits_fn(x_new), y, kappa, targeted)
        per_sample = dist + const * hinge
        return jnp.sum(per_sample), (per_sample, dist, adv, x_new)

    grad_fn = jax.grad(objective, has_aux=True)

    def step(i, state, inputs):
        w, opt_state, active, prev, found, best_dist, best_x = state
        x, y, const = inputs
        grads, (loss, dist, adv, x_new) = grad_fn(w, const, x, y)
        stopping, prev = stall_check(i, loss, prev, check_every, abort_early)
        adv = adv & active & ~stopping  # the reference breaks before it records a stalled iterate
        improved = adv & (dist < best_dist)
        best_dist = jnp.where(improved, dist, best_dist)
        best_x = jnp.where(_expand(improved, x), x_new, best_x)
        found = found | adv
        active = active & ~stopping
        # Adam per sample (its own step count), so that a chunk carries its samples' whole state
        updates, opt_state = jax.vmap(tx.update)(grads, opt_state, w)
        w = jnp.where(_expand(active, w), optax.apply_updates(w, updates), w)
        return w, opt_state, active, prev, found, best_dist, best_x

    def search_step(s, outer):
        const, lower, upper, best_dist, best_x = outer
        if repeat:
            const = jnp.where(s == binary_search_steps - 1, upper, const)
        state = (w0, jax.vmap(tx.init)(w0), jnp.ones(batch, bool), jnp.full(batch, jnp.inf, dtype),
                 jnp.zeros(batch, bool), best_dist, best_x)
        state = loops.for_active_segments(step, state, (x, y, const), active=lambda state: state[2],
                                          steps=steps, check_every=check_every, chunk_size=chunk,
                                          tail_chunk_size=tail_chunk)
        found, best_dist, best_x = state[4:]
        const, lower, upper = binary_search_update(const, lower, upper, found)
        return const, lower, upper, best_dist, best_x

    outer = (
        jnp.full(batch, initial_const, dtype),
        jnp.zeros(batch, dtype),
        jnp.full(batch, 1e10, dtype),
        jnp.full(batch, jnp.inf, dtype),
        x,
    )
    _, _, _, best_dist, best_x = loops.fori_loop(0, binary_search_steps, search_step, outer)
    success = jnp.isfinite(best_dist)
    x_adv = jnp.where(_expand(success, x), best_x, x)
    norm = jnp.where(success, jnp.sqrt(best_dist), jnp.inf)
    return MinNormResult(x_adv, success, norm)
