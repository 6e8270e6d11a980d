"""EAD: Elastic-net Attacks to DNNs (Chen, Sharma, Zhang, Yi & Hsieh, AAAI 2018).

Per sample, minimises ``c * f(x') + ||x' - x||_2^2 + beta * ||x' - x||_1`` over the box with FISTA,
as the authors' ``en_attack.py``::

    x_{k+1} = clip(S_beta(y_k - a_k * grad g(y_k)), bounds)     g(v) = c * f(v) + ||v - x||_2^2
    y_{k+1} = x_{k+1} + (k + 1) / (k + 4) * (x_{k+1} - x_k)
    a_k = learning_rate * (1 - k / steps) ** 0.5                  (the reference's polynomial decay)

for iterations ``k = 0, 1, ...``. The momentum factor is the reference's: its ``zt = t / (t + 3)`` reads
the step counter ``t`` after the gradient step has incremented it (the paper writes ``k / (k + 3)``;
torchattacks' EADEN / EADL1 also uses ``(k + 1) / (k + 4)``). Where ``S_beta`` shrinks ``v - x`` towards 0 by ``beta`` (soft thresholding, the reference thresholds
by ``beta`` itself, not ``a_k * beta``) and ``f`` is the C&W hinge ``max(Z_y - max_{j != y} Z_j +
kappa, 0)`` (targeted: ``max(max_{j != t} Z_j - Z_t + kappa, 0)``). ``c`` is binary-searched per
sample exactly as in C&W (:mod:`gfa_jax.attacks.minimum_norm.cw`), starting at ``initial_const``.

Decision rule: among all adversarial iterates ``x_k`` of all search steps, keep the one with the
smallest elastic-net distance ``||.||_2^2 + beta ||.||_1`` ('EN', registered as ``ead_en``) or the
smallest L1 distance ('L1', ``ead_l1``). The rule only selects: the optimisation and the binary
search are the same for both, so the L1 rule's result never has a larger L1 norm than the EN one's.

Defaults as in the reference: ``beta=1e-3``, ``kappa=0``, ``initial_const=1e-3``,
``binary_search_steps=9``, ``steps=1000``, ``learning_rate=1e-2``, ``abort_early=True``.
Deviation: the early-abort test is per sample, and the iterations run only on the samples still
active, compacted into chunks (see :mod:`gfa_jax.attacks.minimum_norm.cw`).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

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
from gfa_jax.attacks.minimum_norm.cw import _sq_l2, binary_search_update, cw_margin_terms, stall_check

_TEST_KWARGS = {"steps": 10, "binary_search_steps": 2}


def shrinkage_threshold(z: Array, x: Array, beta: Array | float, bounds: Bounds) -> Array:
    """Shrink ``z - x`` elementwise towards 0 by ``beta``, then clip to ``bounds`` (EAD's projection)."""
    delta = z - x
    shrunk = jnp.sign(delta) * jnp.maximum(jnp.abs(delta) - beta, 0.0)
    return clip_to_bounds(x + shrunk, bounds)


def ead(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array | None = None,
    *,
    bounds: Bounds,
    decision_rule: str = "EN",
    targeted: bool = False,
    kappa: float = 0.0,
    beta: float = 1e-3,
    initial_const: float = 1e-3,
    binary_search_steps: int = 9,
    steps: int = 1000,
    learning_rate: float = 1e-2,
    abort_early: bool = True,
    chunk_size: int | None = None,
    tail_chunk_size: int | None = None,
) -> MinNormResult:
    """EAD (see the module docstring). ``key`` is unused (deterministic attack).

    Args:
      decision_rule: 'EN' or 'L1': which distance picks the returned adversarial.
      targeted: if True, ``y`` holds target labels and success means ``argmax == y``.
      kappa: confidence margin.
      beta: L1 weight, also the shrinkage threshold (reference 1e-3).
      initial_const, binary_search_steps: the binary search over ``c`` (as C&W).
      steps: FISTA iterations per binary-search step; learning_rate: initial step size.
      abort_early: stop a sample's optimisation when its loss stalls (checked every steps // 10).
      chunk_size, tail_chunk_size: the compaction of the iterations into chunks of samples still
        active (as C&W; see :func:`gfa_jax.attacks.loops.for_active_segments`).

    Returns:
      :class:`MinNormResult` with ``norm`` the L1 distance (``inf`` and ``x_adv = x`` on failure).
    """
    del key
    rule = decision_rule.upper()
    if rule not in ("EN", "L1"):
        raise ValueError(f"decision_rule must be 'EN' or 'L1', got {decision_rule!r}")
    dtype = x.dtype
    batch = x.shape[0]
    kappa = jnp.asarray(kappa, dtype)
    beta = jnp.asarray(beta, dtype)
    check_every = max(steps // 10, 1) if abort_early else steps
    repeat = binary_search_steps >= 10

    chunk = loops.chunk_rows(batch, chunk_size)
    tail_chunk = loops.tail_chunk_rows(chunk, tail_chunk_size)

    def smooth_loss(v, const, x, y):
        hinge, _ = cw_margin_terms(logits_fn(v), y, kappa, targeted)
        return jnp.sum(const * hinge + _sq_l2(v - x))

    grad_fn = jax.grad(smooth_loss)

    def step(i, state, inputs):
        x_k, y_k, active, prev, found, best_score, best_l1, best_x = state
        x, y, const = inputs
        lr = learning_rate * jnp.sqrt(1.0 - i.astype(dtype) / steps)
        x_new = shrinkage_threshold(y_k - lr * grad_fn(y_k, const, x, y), x, beta, bounds)
        y_new = x_new + ((i + 1) / (i + 4.0)).astype(dtype) * (x_new - x_k)
        hinge, adv = cw_margin_terms(logits_fn(x_new), y, kappa, targeted)
        l1 = per_sample_norm(x_new - x, 1)
        en = _sq_l2(x_new - x) + beta * l1
        loss = const * hinge + en
        stopping, prev = stall_check(i, loss, prev, check_every, abort_early)
        adv = adv & active & ~stopping  # the reference breaks before it records a stalled iterate
        score = en if rule == "EN" else l1
        improved = adv & (score < best_score)
        best_score = jnp.where(improved, score, best_score)
        best_l1 = jnp.where(improved, l1, best_l1)
        best_x = jnp.where(_expand(improved, x), x_new, best_x)
        found = found | adv
        x_k = jnp.where(_expand(active, x), x_new, x_k)
        y_k = jnp.where(_expand(active, x), y_new, y_k)
        active = active & ~stopping
        return x_k, y_k, active, prev, found, best_score, best_l1, best_x

    def search_step(s, outer):
        const, lower, upper, best_score, best_l1, best_x = outer
        if repeat:
            const = jnp.where(s == binary_search_steps - 1, upper, const)
        state = (x, x, jnp.ones(batch, bool), jnp.full(batch, jnp.inf, dtype), jnp.zeros(batch, bool),
                 best_score, best_l1, best_x)
        state = loops.for_active_segments(step, state, (x, y, const), active=lambda state: state[2],
                                          steps=steps, check_every=check_every, chunk_size=chunk,
                                          tail_chunk_size=tail_chunk)
        found, best_score, best_l1, best_x = state[4:]
        const, lower, upper = binary_search_update(const, lower, upper, found)
        return const, lower, upper, best_score, best_l1, best_x

    outer = (
        jnp.full(batch, initial_const, dtype),
        jnp.zeros(batch, dtype),
        jnp.full(batch, 1e10, dtype),
        jnp.full(batch, jnp.inf, dtype),
        jnp.full(batch, jnp.inf, dtype),
        x,
    )
    _, _, _, _, best_l1, best_x = loops.fori_loop(0, binary_search_steps, search_step, outer)
    success = jnp.isfinite(best_l1)
    x_adv = jnp.where(_expand(success, x), best_x, x)
    norm = jnp.where(success, best_l1, jnp.inf)
    return MinNormResult(x_adv, success, norm)


# The two decision rules as registered attacks: ``ead`` with its rule fixed (every other keyword of
# ``ead`` stays an option, so each gets a full options section in the config).
ead_en = register("ead_en", norm="l1", kind="minimum_norm", test_kwargs=_TEST_KWARGS)(
    functools.partial(ead, decision_rule="EN"))
ead_l1 = register("ead_l1", norm="l1", kind="minimum_norm", test_kwargs=_TEST_KWARGS)(
    functools.partial(ead, decision_rule="L1"))
