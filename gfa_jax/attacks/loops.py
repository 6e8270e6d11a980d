"""The loops every iterative attack runs: XLA-friendly bodies and per-sample early stopping.

Why a rolled attack loop was 2-3x slower per step than the same steps unrolled on XLA:CPU
(results/benchmarks/loop_slowdown.md): the input gradient of a convolution is itself a
convolution whose kernel JAX addresses as ``HWOI`` (input and output features swapped through
the dimension numbers, no transpose). XLA:CPU only runs convolutions with ``NHWC`` inputs and an
``HWIO`` kernel on its fast Eigen path; the pass that rewrites other layouts into that one
(``ConvCanonicalization``) walks the *entry* computation only. Unrolled, every step sits in the
entry computation and gets canonicalised; inside a ``while`` body the backward convolution is
left as it is and emitted as a naive loop nest (``conv_general_dilated.N_elemental_kernel_module``
in the dump), several times slower than Eigen.

:func:`canonical_convolutions` does that rewrite in JAX, before XLA sees the loop: it traces a
function and re-emits every convolution with non-canonical dimension numbers as ``transpose ->
NHWC/HWIO convolution -> transpose`` (for a backward convolution only the small kernel is
transposed). :func:`fori_loop` and :func:`while_active` apply it to every loop body of the
attack library, so every loop attack, whatever the model, gets Eigen convolutions in a rolled
loop (short compiles, no unrolling needed).

Four ways to spend nothing on a sample that is done: :func:`while_active` ends a loop once no
sample of the batch is active (per-iteration early stop); :func:`for_active_chunks` runs a
whole attack run only on the samples still to attack, gathered into chunks of a static size
(batch compaction between runs: AutoAttack's members, Square's queries), as the reference
implementations index their still-robust subset; :func:`for_active_runs` does that for the runs
of one attack that settle a sample at its first success (APGD's restarts, APGD-T's and FAB-T's
targets), and once few samples are left packs several runs into one chunk, as ``(sample, run)``
rows, so 4 samples left for 9 targets take one chunk, not nine mostly of padding; and
:func:`for_active_segments` compacts the iterations of an attack whose samples stop only on
periodic checks (C&W's and EAD's early abort) between two checks.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jex
from jax.extend import source_info_util

Array = jax.Array

_CONV = "conv_general_dilated"
# Custom-derivative calls keep their rule: their inner jaxprs are not rewritten (a convolution
# inside a user's custom_vjp stays as written).
_OPAQUE = ("custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr", "custom_lin")


# ----------------------------------------------------------------------------- canonical convolutions


def is_canonical(dimension_numbers, ndim: int) -> bool:
    """True when a convolution reads ``N, spatial..., C`` input, ``spatial..., I, O`` kernel and
    writes ``N, spatial..., C`` output: the only layout XLA:CPU's Eigen convolution accepts."""
    lhs, rhs, out = dimension_numbers
    spatial = tuple(range(1, ndim - 1))
    return (
        tuple(lhs) == (0, ndim - 1) + spatial
        and tuple(out) == (0, ndim - 1) + spatial
        and tuple(rhs) == (ndim - 1, ndim - 2) + tuple(range(ndim - 2))
    )


def canonical_conv(lhs: Array, rhs: Array, *, dimension_numbers, **params) -> Array:
    """``conv_general_dilated`` with any dimension numbers, computed as an NHWC x HWIO convolution
    between transposes (a transpose by the identity permutation is dropped)."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    ndim = lhs.ndim
    lhs_perm = (lhs_spec[0],) + tuple(lhs_spec[2:]) + (lhs_spec[1],)
    rhs_perm = tuple(rhs_spec[2:]) + (rhs_spec[1], rhs_spec[0])
    out_axes = (out_spec[0],) + tuple(out_spec[2:]) + (out_spec[1],)  # canonical axis k is axis out_axes[k]
    spatial = tuple(range(1, ndim - 1))
    canonical = lax.ConvDimensionNumbers(
        lhs_spec=(0, ndim - 1) + spatial,
        rhs_spec=(ndim - 1, ndim - 2) + tuple(range(ndim - 2)),
        out_spec=(0, ndim - 1) + spatial,
    )
    out = lax.conv_general_dilated_p.bind(
        _transpose(lhs, lhs_perm), _transpose(rhs, rhs_perm), dimension_numbers=canonical, **params
    )
    return _transpose(out, tuple(np.argsort(out_axes)))


def _transpose(x: Array, perm: tuple[int, ...]) -> Array:
    return x if perm == tuple(range(x.ndim)) else jnp.transpose(x, perm)


def _rewrite_param(value):
    if isinstance(value, jex.ClosedJaxpr):
        return _rewrite_closed(value)
    if isinstance(value, tuple) and value and all(isinstance(v, jex.ClosedJaxpr) for v in value):
        return tuple(_rewrite_closed(v) for v in value)
    return value


def _rewrite_closed(closed: jex.ClosedJaxpr) -> jex.ClosedJaxpr:
    """``closed`` with its convolutions (and those of its sub-jaxprs) in canonical layout."""
    if not _has_noncanonical_conv(closed.jaxpr):
        return closed
    avals = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in closed.in_avals]
    return jax.make_jaxpr(lambda *args: _evaluate(closed.jaxpr, closed.consts, args))(*avals)


def _has_noncanonical_conv(jaxpr: jex.Jaxpr) -> bool:
    """Whether ``jaxpr`` or one of its sub-jaxprs (custom-derivative calls aside) has a convolution
    to rewrite; bodies already rewritten (inner loops of the library) are left as they are."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == _CONV:
            if not is_canonical(eqn.params["dimension_numbers"], eqn.invars[0].aval.ndim):
                return True
            continue
        if eqn.primitive.name in _OPAQUE:
            continue
        for value in eqn.params.values():
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, jex.ClosedJaxpr) and _has_noncanonical_conv(v.jaxpr) for v in values):
                return True
    return False


def _evaluate(jaxpr: jex.Jaxpr, consts, args) -> list:
    env: dict = {}

    def read(var):
        return var.val if isinstance(var, jex.Literal) else env[var]

    for var, value in zip(jaxpr.constvars, consts):
        env[var] = value
    for var, value in zip(jaxpr.invars, args):
        env[var] = value
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        # Each re-emitted operation keeps its own source line and name stack (as jax.core.eval_jaxpr
        # does), so that HLO dumps and profiles name the attack's code, not this loop.
        name_stack = source_info_util.current_name_stack() + eqn.source_info.name_stack
        with source_info_util.user_context(eqn.source_info.traceback, name_stack=name_stack), eqn.ctx.manager:
            if eqn.primitive.name == _CONV and not is_canonical(eqn.params["dimension_numbers"], invals[0].ndim):
                outs = [canonical_conv(*invals, **eqn.params)]
            else:
                params = eqn.params if eqn.primitive.name in _OPAQUE else {
                    k: _rewrite_param(v) for k, v in eqn.params.items()}
                outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(params))
                if not eqn.primitive.multiple_results:
                    outs = [outs]
        for var, value in zip(eqn.outvars, outs):
            if not isinstance(var, jex.DropVar):
                env[var] = value
    return [read(v) for v in jaxpr.outvars]


def canonical_convolutions(fn: Callable) -> Callable:
    """``fn`` with every convolution it runs (its gradients' included) in XLA:CPU's canonical
    NHWC / HWIO layout; same values. ``fn`` takes and returns pytrees of arrays."""

    def wrapped(*args):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        out = _evaluate(closed.jaxpr, closed.consts, jax.tree_util.tree_leaves(args))
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), out)

    return wrapped


# ----------------------------------------------------------------------------- loops


def fori_loop(lower, upper, body: Callable[[Array, Any], Any], state, *, unroll: bool | int = 1):
    """``lax.fori_loop`` (``state <- body(i, state)``) whose body has canonical convolutions."""
    return lax.fori_loop(lower, upper, canonical_convolutions(body), state, unroll=unroll)


def while_loop(cond: Callable[[Any], Array], body: Callable[[Any], Any], state):
    """``lax.while_loop`` whose body has canonical convolutions."""
    return lax.while_loop(cond, canonical_convolutions(body), state)


def while_active(step: Callable[[Any], Any], state, *, max_steps: int, active: Callable[[Any], Array]):
    """``state <- step(state)`` while some sample is ``active(state)`` (bool ``[B]``) and fewer than
    ``max_steps`` steps ran; per-sample early stopping for the whole batch.

    ``step`` itself must leave inactive samples unchanged (``jnp.where(active, new, old)``), so
    that stopping early gives the same result as running every step.
    """
    def cond(carry):
        i, s = carry
        return (i < max_steps) & jnp.any(active(s))

    def body(carry):
        i, s = carry
        return i + 1, step(s)

    _, state = while_loop(cond, body, (jnp.asarray(0, jnp.int32), state))
    return state


# ----------------------------------------------------------------------------- compaction

# Samples per chunk on CPU when an attack is not told (``chunk_size=None``); see ``chunk_rows``.
CPU_CHUNK_ROWS = 128


# Chunk size for the samples left over after full chunks, where an attack compiles its body for
# both sizes (C&W, EAD, JSMA, and Square and APGD(-T) run alone; not AutoAttack, for its compile
# time): the paper CNN's gradient costs 1.16x per sample at 32 rows as at 256, 1.4x at 16 (2-core
# dev machine).
CPU_TAIL_CHUNK_ROWS = 32


def tail_chunk_rows(chunk: int, tail_chunk_size: int | None = None) -> int | None:
    """The tail chunk size that goes with chunks of ``chunk`` rows: ``tail_chunk_size`` if given (one
    of ``chunk`` rows or more: no tail), else ``CPU_TAIL_CHUNK_ROWS`` on CPU when smaller than
    ``chunk``; ``None`` means no tail (on accelerators the batch is one chunk)."""
    if tail_chunk_size is not None:
        if int(tail_chunk_size) < 1:
            raise ValueError(f"tail_chunk_size must be a positive number of samples, got {tail_chunk_size!r}")
        return int(tail_chunk_size) if tail_chunk_size < chunk else None
    if jax.default_backend() != "cpu" or chunk <= CPU_TAIL_CHUNK_ROWS:
        return None
    return CPU_TAIL_CHUNK_ROWS


def chunk_rows(batch: int, chunk_size: int | None) -> int:
    """The static chunk size of :func:`for_active_chunks` for a batch of ``batch`` samples.

    ``None`` picks one: on CPU ``CPU_CHUNK_ROWS``, 128 (measured on the 2-core dev machine: the
    paper CNN's gradient costs the same per sample from 32 samples up, the MLP's 3x more per sample
    below 128, and FAB-T at batch 256 ran fastest with 128 on both); on accelerators the whole
    batch (one chunk: the masked full batch, as before compaction, since a GPU's cost per sample
    grows as the batch shrinks; unmeasured there, so unchanged).
    """
    if chunk_size is None:
        chunk_size = CPU_CHUNK_ROWS if jax.default_backend() == "cpu" else batch
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive number of samples, got {chunk_size!r}")
    return min(int(chunk_size), batch)


def _chunk_counts(n_items: Array, c: int, t: int) -> tuple[Array, Array]:
    """How many chunks of ``c`` and then of ``t`` rows cover ``n_items`` positions (see
    :func:`for_active_chunks` for the tail rule)."""
    if t < c:
        n_full = n_items // c
        n_tail = (n_items - n_full * c + t - 1) // t
        # Tail chunks only where they save a quarter of a full chunk's rows: a small chunk costs more
        # per row (1.16x at 32 rows for the paper CNN, 1.5x for the MLP), so 123 samples left run
        # as one chunk of 128, not four of 32.
        worth_it = 4 * n_tail * t <= 3 * c
        n_full = jnp.where(worth_it | (n_tail == 0), n_full, n_full + 1)
        return n_full, jnp.where(worth_it, n_tail, 0)
    return (n_items + c - 1) // c, jnp.asarray(0, jnp.int32)


def _over_chunks(fn: Callable[[Array, int, Any], Any], carry, n_items: Array, *, c: int, t: int):
    """``carry <- fn(start, size, carry)`` over chunks of ``size = c`` (then ``t``) consecutive
    positions ``start .. start + size - 1`` covering ``0 .. n_items - 1`` (the last chunk may run past
    ``n_items``: at most to :func:`_n_slots`)."""
    n_full, n_tail = _chunk_counts(n_items, c, t)

    def chunks(size, first, count, carry):
        def body(state):
            k, inner = state
            return k + 1, fn(first + k * size, size, inner)

        _, carry = while_loop(lambda state: state[0] < count, body, (jnp.asarray(0, jnp.int32), carry))
        return carry

    carry = chunks(c, 0, n_full, carry)
    return chunks(t, n_full * c, n_tail, carry) if t < c else carry


def _n_slots(b: int, c: int, t: int) -> int:
    """Positions the chunks over ``b`` items can reach: room for every slice (``lax.dynamic_slice``
    would shift a slice that ran past the end)."""
    return max(-(-b // c) * c, b + t if t < c else 0)


def _pad_rows(a: Array, n: int) -> Array:
    return jnp.pad(a, [(0, n - a.shape[0])] + [(0, 0)] * (a.ndim - 1))


def _chunk_and_tail(b: int, chunk_size: int, tail_chunk_size: int | None) -> tuple[int, int]:
    c = min(chunk_size, b)
    return c, (c if tail_chunk_size is None else min(tail_chunk_size, c))


def for_active_chunks(fn: Callable[[Array, Array, Any], Any], carry, active: Array, *, chunk_size: int,
                      tail_chunk_size: int | None = None):
    """``carry <- fn(rows, valid, carry)`` over chunks of ``chunk_size`` sample indices holding every
    ``active`` sample (bool ``[B]``), and no more chunks than those take.

    Batch compaction with static shapes: the active samples' indices are sorted to the front (in
    order) and cut into chunks; a ``while_loop`` runs ``ceil(n_active / chunk_size)`` of them, so
    settled samples cost nothing, where a masked full batch would pay for them. ``rows`` (int
    ``[chunk_size]``) are the chunk's indices into the batch and ``valid`` (bool ``[chunk_size]``)
    marks the real ones (the last chunk is padded with other rows); ``fn`` gathers what it needs with
    ``rows`` and writes back with :func:`scatter_rows`, which drops the padding. Under ``vmap`` with
    different active sets the loop runs for the largest.

    With ``tail_chunk_size`` (smaller than ``chunk_size``), the samples left over after full chunks go
    in chunks of ``tail_chunk_size`` where those hold at most three quarters of a full chunk's rows
    (a second loop, so ``fn`` is compiled for both sizes): 20 samples left then cost a chunk of 32,
    not one of 128, while 123 still take one chunk of 128.
    """
    b = active.shape[0]
    c, t = _chunk_and_tail(b, chunk_size, tail_chunk_size)
    n_active = jnp.sum(active, dtype=jnp.int32)
    order = _pad_rows(jnp.argsort(~active, stable=True), _n_slots(b, c, t))

    def on_chunk(start, size, carry):
        rows = lax.dynamic_slice(order, (start,), (size,))
        return fn(rows, start + jnp.arange(size, dtype=jnp.int32) < n_active, carry)

    return _over_chunks(on_chunk, carry, n_active, c=c, t=t)


def for_active_runs(run_rows: Callable[[Array, Array, Array, Any, Any], Any],
                    record: Callable[[Any, Array, Array, Any], Any], results, *, active: Callable[[Any], Array],
                    n_runs: int | Array, chunk_size: int, tail_chunk_size: int | None = None,
                    row_inputs: Callable[[Array, Array], Any] | None = None, pack: bool = True):
    """Runs ``0 .. n_runs - 1`` of an attack that attacks, in each run, only the samples still
    ``active(results)`` (bool ``[B]``): restarts, and the target classes of APGD-T and FAB-T, where the
    reference runs each on the samples not fooled yet. Ends once no sample is active.

    ``run_rows(rows, runs, valid, inputs, superseded)`` runs one chunk: row ``k`` is sample ``rows[k]``
    in run ``runs[k]`` (int ``[chunk]`` each), and ``inputs`` holds ``row_inputs(rows, runs)`` for
    those rows (a pytree of per-row arrays, e.g. random starts drawn with :func:`run_keys`; ``None``
    without ``row_inputs``). It returns per-row outputs (a pytree of ``[chunk, ...]``) and must not
    depend on the other rows of the chunk, except that its loop should also stop the rows
    ``superseded(settled)`` marks (bool ``[chunk] -> [chunk]``, see below; ``None`` where no two
    runs can share a chunk). ``record(results, rows, valid, outputs)`` writes one
    run's rows into ``results`` (with :func:`scatter_rows`), leaving a sample that an earlier run
    settled as it is; it is called once per run of a chunk, in run order. ``row_inputs`` is
    evaluated once per round of runs, for ``B`` rows, outside the chunks: a random draw compiled
    into the chunk body would be compiled once per chunk size (seconds on XLA:CPU), and one per run
    for the whole batch would cost every packed run a batch's draw (8 ms on the paper CNN at 256).

    Packing: with ``n`` samples active and ``n`` at most half a chunk, the next ``chunk // n`` runs go
    into the same chunk as ``(sample, run)`` rows (one chunk where the runs one after another would
    each take a chunk mostly of padding: 4 samples left for APGD-T's 9 targets cost one chunk, not
    nine). A sample settled by one of those runs still takes its rows in the later ones, which fill
    rows that would be padding; ``record``'s run order keeps its first success, so the results are
    those of running the runs one after another, and a run's loop should stop such rows once an
    earlier run's row settles their sample (the ``superseded`` given to ``run_rows``,
    :func:`superseded` on the chunk's valid rows), so that packing never runs longer than the runs
    one after another. ``pack=False`` runs one run at a time (tests).
    """
    b = active(results).shape[0]
    c, t = _chunk_and_tail(b, chunk_size, tail_chunk_size)
    n_slots = _n_slots(b, c, t)
    packs = pack and not (isinstance(n_runs, int) and n_runs == 1)  # n_runs may be traced

    def next_runs(state):
        first, results = state
        now = active(results)
        n_active = jnp.sum(now, dtype=jnp.int32)
        per_run = jnp.maximum(n_active, 1)
        n_pack = jnp.clip(c // per_run, 1, n_runs - first) if packs else jnp.asarray(1, jnp.int32)
        order = jnp.argsort(~now, stable=True)
        n_items = n_active * n_pack

        def rows_and_runs(positions):
            # positions % per_run < b: in range (past n_items, padding rows of later runs)
            rows = order.at[positions % per_run].get(mode="promise_in_bounds")
            return rows, first + positions // per_run

        # positions 0 .. b - 1 hold every row of the round (n_items <= max(n_active, c) <= b); padded
        # so that every chunk's slice stays in range
        inputs = None if row_inputs is None else jax.tree_util.tree_map(
            lambda a: _pad_rows(a, n_slots), row_inputs(*rows_and_runs(jnp.arange(b, dtype=jnp.int32))))

        def on_positions(start, size, results):
            positions = start + jnp.arange(size, dtype=jnp.int32)
            rows, runs = rows_and_runs(positions)
            valid = positions < n_items
            chunk_inputs = None if inputs is None else jax.tree_util.tree_map(
                lambda a: lax.dynamic_slice_in_dim(a, start, size), inputs)
            if not packs:
                return record(results, rows, valid, run_rows(rows, runs, valid, chunk_inputs, None))
            outputs = run_rows(rows, runs, valid, chunk_inputs,
                               lambda settled: superseded(rows, runs, settled & valid))
            return fori_loop(0, n_pack, lambda j, res: record(res, rows, valid & (runs == first + j), outputs),
                             results)

        return first + n_pack, _over_chunks(on_positions, results, n_items, c=c, t=t)

    def runs_left(state):
        first, results = state
        return (first < n_runs) & jnp.any(active(results))

    _, results = while_loop(runs_left, next_runs, (jnp.asarray(0, jnp.int32), results))
    return results


def run_keys(key, rows: Array, runs: Array, batch: int) -> Array:
    """One PRNG key per row of :func:`for_active_runs` (sample ``rows[k]`` of a batch of ``batch``, in
    run ``runs[k]``), from ``key``, the run and the sample only: a row draws the same whatever chunk
    it is run in, and with whichever rows."""
    return jax.vmap(lambda row, run: jax.random.fold_in(key, run * batch + row))(rows, runs)


def superseded(rows: Array, runs: Array, settled: Array) -> Array:
    """Bool ``[chunk]``: the rows of a packed chunk (:func:`for_active_runs`) whose sample a row of an
    earlier run in the same chunk has already ``settled`` (bool ``[chunk]``, padding rows False): their
    own result can no longer count, so a run's loop need not wait for them."""
    same_sample = rows[:, None] == rows[None, :]
    earlier = runs[None, :] < runs[:, None]
    return jnp.any(same_sample & earlier & settled[None, :], axis=1)


def for_active_segments(step: Callable[[Array, Any, Any], Any], state, inputs, *,
                        active: Callable[[Any], Array], steps: int, check_every: int, chunk_size: int,
                        tail_chunk_size: int | None = None):
    """Steps ``0 .. steps - 1`` of a per-sample iteration whose samples can stop only on check steps
    (``i % check_every == 0``: C&W's and EAD's early abort; JSMA stops after any step, so
    ``check_every=1``), each step run only on the samples still active, compacted into chunks of
    ``chunk_size``.

    ``state`` and ``inputs`` are pytrees of ``[B, ...]`` per-sample arrays (``inputs`` read-only);
    ``active(state)`` is bool ``[B]``; ``step(i, chunk_state, chunk_inputs)`` returns the chunk's
    next state and must leave a sample that is not active unchanged. The steps are cut into segments
    that end on a check step (``[0]``, ``[1, check_every]``, ``[check_every + 1, 2 check_every]``,
    ...): since no sample stops inside a segment, running each segment on the samples active at its
    start (:func:`for_active_chunks`) costs nothing for the samples already stopped and gives every
    sample the trajectory it has in the full batch. The loop ends once no sample is active.
    ``tail_chunk_size``: see :func:`for_active_chunks`.
    """
    b = active(state).shape[0]
    c = min(chunk_size, b)

    def segment(carry):
        start, state = carry
        end = jnp.minimum(-(-start // check_every) * check_every + 1, steps)  # one past the next check

        def on_chunk(rows, valid, state):
            chunk_inputs = jax.tree_util.tree_map(lambda a: a[rows], inputs)
            chunk = jax.tree_util.tree_map(lambda a: a[rows], state)
            _, chunk = while_loop(lambda carry: carry[0] < end,
                                  lambda carry: (carry[0] + 1, step(carry[0], carry[1], chunk_inputs)),
                                  (start, chunk))
            return scatter_rows(state, rows, valid, chunk)

        return end, for_active_chunks(on_chunk, state, active(state), chunk_size=c,
                                      tail_chunk_size=tail_chunk_size)

    def cond(carry):
        start, state = carry
        return (start < steps) & jnp.any(active(state))

    _, state = while_loop(cond, segment, (jnp.asarray(0, jnp.int32), state))
    return state


def scatter_rows(full, rows: Array, valid: Array, chunk):
    """``full`` (a pytree of ``[B, ...]`` arrays) with rows ``rows[valid]`` replaced by ``chunk``'s;
    invalid (padding) rows are dropped, so duplicate padding indices never race."""
    out_of_range = jax.tree_util.tree_leaves(full)[0].shape[0]
    target = jnp.where(valid, rows, out_of_range)
    return jax.tree_util.tree_map(lambda a, v: a.at[target].set(v, mode="drop"), full, chunk)
