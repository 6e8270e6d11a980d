"""attacks.loops: canonical convolutions (same values, Eigen-friendly layout) and early stopping
(same per-sample outcome as running the whole budget)."""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gfa_jax import attacks
from gfa_jax.attacks import loops

BOUNDS = (-1.0, 1.0)


def tiny_cnn(key, channels: int = 4, classes: int = 5):
    """conv 3x3 (1 -> channels, SAME) - relu - dense: logits_fn on [B, 6, 6, 1]."""
    k_conv, k_dense = jax.random.split(key)
    kernel = jax.random.normal(k_conv, (3, 3, 1, channels)) / 3.0
    dense = jax.random.normal(k_dense, (6 * 6 * channels, classes)) / 12.0

    def logits_fn(x):
        h = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.nn.relu(h).reshape(x.shape[0], -1) @ dense

    return logits_fn


def conv_dimension_numbers(fn, *args):
    """The dimension numbers of every convolution in ``fn``'s jaxpr, sub-jaxprs included."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                found.append((eqn.params["dimension_numbers"], eqn.invars[0].aval.ndim))
            for value in eqn.params.values():
                for v in value if isinstance(value, tuple) else (value,):
                    if isinstance(v, jax.extend.core.ClosedJaxpr):
                        walk(v.jaxpr)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


@pytest.mark.parametrize("dims", [("NHWC", "HWIO", "NHWC"), ("NCHW", "OIHW", "NCHW")])
def test_canonical_convolutions_same_gradient_only_canonical_convs(dims):
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 3) if dims[0] == "NHWC" else (2, 3, 5, 5))
    k = jax.random.normal(jax.random.key(1), (3, 3, 3, 4) if dims[1] == "HWIO" else (4, 3, 3, 3))

    def loss(x, k):
        out = jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dims)
        return jnp.sum(jnp.tanh(out) ** 2)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))
    canonical = loops.canonical_convolutions(jax.grad(loss, argnums=(0, 1)))
    chex.assert_trees_all_close(jax.jit(canonical)(x, k), grads(x, k), rtol=1e-5, atol=1e-5)
    before = conv_dimension_numbers(jax.grad(loss, argnums=(0, 1)), x, k)
    after = conv_dimension_numbers(canonical, x, k)
    assert not all(loops.is_canonical(d, n) for d, n in before)  # the backward conv is not canonical
    assert after and all(loops.is_canonical(d, n) for d, n in after)


def test_canonical_convolutions_reach_inside_loops():
    logits_fn = tiny_cnn(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (3, 6, 6, 1), minval=-1, maxval=1)

    def body(_, v):
        return v + 0.01 * jax.grad(lambda z: jnp.sum(logits_fn(z)[:, 0]))(v)

    looped = lambda v: loops.fori_loop(0, 3, body, v)  # noqa: E731
    assert all(loops.is_canonical(d, n) for d, n in conv_dimension_numbers(looped, x))
    chex.assert_trees_all_close(jax.jit(looped)(x), jax.lax.fori_loop(0, 3, body, x), rtol=1e-5, atol=1e-6)


def test_rewritten_loop_bodies_keep_their_source_lines():
    # HLO dumps and profiles name an operation by its source line: after the rewrite, every
    # operation of the body must still point at the body's own code, not at loops.py.
    logits_fn = tiny_cnn(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (3, 6, 6, 1), minval=-1, maxval=1)

    def body(_, v):
        return v + 0.01 * jax.grad(lambda z: jnp.sum(jnp.tanh(logits_fn(z))[:, 0]))(v)

    loop = next(e for e in jax.make_jaxpr(lambda v: loops.fori_loop(0, 3, body, v))(x).jaxpr.eqns
                if e.primitive.name in ("while", "scan"))
    inner = next(v for v in loop.params.values() if isinstance(v, jax.extend.core.ClosedJaxpr)
                 and any(e.primitive.name == "conv_general_dilated" for e in v.jaxpr.eqns))
    places = {jax.extend.source_info_util.summarize(e.source_info) for e in inner.jaxpr.eqns}
    assert not any(loops.__file__ in p for p in places), places
    assert any("test_loops.py" in p and "logits_fn" in p for p in places), places


def test_while_active_stops_when_no_sample_is_active():
    def step(state):
        count, value = state
        return count + 1, jnp.where(value > 0, value - 1, value)

    count, value = loops.while_active(step, (0, jnp.array([2, 5, 1])), max_steps=10,
                                      active=lambda s: s[1] > 0)
    assert int(count) == 5 and np.all(np.asarray(value) == 0)
    count, _ = loops.while_active(step, (0, jnp.array([2, 50])), max_steps=10, active=lambda s: s[1] > 0)
    assert int(count) == 10


def run_whole_budget(step, state, *, max_steps, active):
    """``loops.while_active`` without the early stop: every one of ``max_steps`` steps runs."""
    del active
    return jax.lax.fori_loop(0, max_steps, lambda _, s: step(s), state)


EARLY_STOP_CASES = {
    "apgd": {"n_iter": 12},
    "apgd_t": {"n_iter": 6, "n_target_classes": 3},
    "square": {"n_queries": 40},
    "fab_t": {"n_iter": 6, "n_target_classes": 3},
}
# eps 0.1: some samples survive (the loops run on for them); 0.3: all fall, the loops stop early
SLOW = pytest.mark.slow
CASES = [("apgd", 0.3), pytest.param("apgd", 0.1, marks=SLOW), pytest.param("apgd_t", 0.1, marks=SLOW),
         pytest.param("square", 0.1, marks=SLOW), pytest.param("square", 0.3, marks=SLOW),
         pytest.param("fab_t", 0.3, marks=SLOW)]


@pytest.mark.parametrize("name,eps", CASES)
def test_early_stop_keeps_each_samples_outcome(name, eps, monkeypatch):
    logits_fn = tiny_cnn(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (12, 6, 6, 1), minval=-1, maxval=1)
    y = jnp.argmax(logits_fn(x), axis=-1)
    fn = attacks.get_attack(name).fn
    kwargs = {"eps": eps, **EARLY_STOP_CASES[name]}
    run = lambda: jax.jit(lambda v: fn(logits_fn, v, y, jax.random.key(2), bounds=BOUNDS, **kwargs))(x)  # noqa: E731
    x_early = run()
    monkeypatch.setattr(loops, "while_active", run_whole_budget)
    x_full = run()
    correct_early = np.asarray(jnp.argmax(logits_fn(x_early), -1) == y)
    correct_full = np.asarray(jnp.argmax(logits_fn(x_full), -1) == y)
    np.testing.assert_array_equal(correct_early, correct_full)
    # samples never fooled ran the same iterations: the same point
    np.testing.assert_allclose(np.asarray(x_early)[correct_full], np.asarray(x_full)[correct_full], atol=1e-6)


# ----------------------------------------------------------------------------- compaction


def count_visits(active, chunk_size, tail_chunk_size=None):
    """(visits per row, chunks run, rows run) of ``for_active_chunks`` over ``active``."""
    b = active.shape[0]

    def visit(rows, valid, carry):
        visits, n_chunks, n_rows = carry
        return visits.at[jnp.where(valid, rows, b)].add(1, mode="drop"), n_chunks + 1, n_rows + rows.shape[0]

    return loops.for_active_chunks(visit, (jnp.zeros(b, jnp.int32), jnp.asarray(0), jnp.asarray(0)), active,
                                   chunk_size=chunk_size, tail_chunk_size=tail_chunk_size)


def test_for_active_chunks_visits_each_active_row_once_in_as_few_chunks_as_needed():
    active = jnp.array([1, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1], bool)  # 7 of 11
    visits, n_chunks, _ = jax.jit(count_visits, static_argnums=1)(active, 3)
    np.testing.assert_array_equal(np.asarray(visits), np.asarray(active, np.int32))
    assert int(n_chunks) == 3  # ceil(7 / 3), not ceil(11 / 3)
    visits, n_chunks, _ = count_visits(jnp.zeros(11, bool), 3)
    assert int(n_chunks) == 0 and int(visits.sum()) == 0
    # vmapped over different active sets: every set is covered, the loop runs for the largest
    sets = jnp.stack([active, jnp.zeros(11, bool), jnp.ones(11, bool)])
    visits, n_chunks, _ = jax.vmap(lambda a: count_visits(a, 4))(sets)
    np.testing.assert_array_equal(np.asarray(visits), np.asarray(sets, np.int32))
    np.testing.assert_array_equal(np.asarray(n_chunks), [2, 0, 3])


@pytest.mark.parametrize("n_active, chunks, rows", [
    (0, 0, 0), (1, 1, 2), (4, 2, 4), (5, 3, 6), (7, 1, 8), (8, 1, 8), (9, 2, 10), (12, 3, 12), (13, 4, 14),
    (15, 2, 16), (16, 2, 16),
])
def test_for_active_chunks_puts_the_leftover_samples_in_tail_chunks(n_active, chunks, rows):
    """Chunks of 8 while a full one remains, then chunks of 2 where those hold at most 6 rows: every
    active row once (13 active: 8 + 2 + 2 + 2 with one padding row, not 8 + 8; 7 left: one chunk of 8,
    not four of 2)."""
    active = jax.random.permutation(jax.random.key(n_active), jnp.arange(16) < n_active)
    visits, n_chunks, n_rows = jax.jit(count_visits, static_argnums=(1, 2))(active, 8, 2)
    np.testing.assert_array_equal(np.asarray(visits), np.asarray(active, np.int32))
    assert (int(n_chunks), int(n_rows)) == (chunks, rows)


def stopping_steps(active_until, *, steps, check_every, chunk_size, tail_chunk_size=None):
    """Run a per-sample counter through :func:`loops.for_active_segments`: sample ``k`` stops on the
    first check step at or after ``active_until[k]``. Returns (steps each sample took, steps each
    sample was given: in a chunk, padding aside)."""
    b = active_until.shape[0]

    def step(i, state, inputs):
        taken, given, active = state
        (until,) = inputs
        taken = taken + active  # what a real attack does: nothing for a stopped sample
        given = given + 1  # breaks the contract on purpose: counts the steps the sample was run
        active = active & ~((i % check_every == 0) & (i >= until))
        return taken, given, active

    state = (jnp.zeros(b, jnp.int32), jnp.zeros(b, jnp.int32), jnp.ones(b, bool))
    taken, given, _ = loops.for_active_segments(step, state, (active_until,), active=lambda s: s[2],
                                                steps=steps, check_every=check_every, chunk_size=chunk_size,
                                                tail_chunk_size=tail_chunk_size)
    return taken, given


@pytest.mark.parametrize("chunk_size, tail_chunk_size", [(16, None), (3, None), (4, 1)])
def test_for_active_segments_runs_a_sample_up_to_its_stopping_check_and_no_further(chunk_size, tail_chunk_size):
    until = jnp.array([0, 3, 4, 5, 6, 12, 19, 30, 100, 2, 7, 8, 16])
    steps, check_every = 23, 4
    taken, given = jax.jit(functools.partial(stopping_steps, steps=steps, check_every=check_every,
                                             chunk_size=chunk_size, tail_chunk_size=tail_chunk_size))(until)
    # stops on check step c = first multiple of 4 >= until, after taking steps 0..c; else runs all 23
    stop = np.minimum(-(-np.asarray(until) // check_every) * check_every + 1, steps)
    np.testing.assert_array_equal(np.asarray(taken), stop)
    np.testing.assert_array_equal(np.asarray(given), stop)  # never run after the segment it stopped in


def test_scatter_rows_drops_padding_even_where_it_repeats_a_row():
    full = (jnp.zeros(4), jnp.zeros((4, 2)))
    rows, valid = jnp.array([0, 2, 0]), jnp.array([True, True, False])
    out = loops.scatter_rows(full, rows, valid, (jnp.array([1.0, 2.0, 9.0]), jnp.ones((3, 2))))
    np.testing.assert_array_equal(np.asarray(out[0]), [1.0, 0.0, 2.0, 0.0])
    np.testing.assert_array_equal(np.asarray(out[1])[:, 0], [1.0, 0.0, 1.0, 0.0])


def test_chunk_rows_defaults_and_rejects_nonsense():
    assert loops.chunk_rows(10, 4) == 4
    assert loops.chunk_rows(10, 64) == 10
    if jax.default_backend() == "cpu":
        assert loops.chunk_rows(1000, None) == loops.CPU_CHUNK_ROWS
    with pytest.raises(ValueError, match="chunk_size"):
        loops.chunk_rows(10, 0)
    assert loops.tail_chunk_rows(128, 16) == 16
    assert loops.tail_chunk_rows(128, 128) is None and loops.tail_chunk_rows(8, 100) is None  # no tail
    if jax.default_backend() == "cpu":
        assert loops.tail_chunk_rows(128) == loops.CPU_TAIL_CHUNK_ROWS
        assert loops.tail_chunk_rows(loops.CPU_TAIL_CHUNK_ROWS) is None
    with pytest.raises(ValueError, match="tail_chunk_size"):
        loops.tail_chunk_rows(10, 0)


def first_successes(success, *, chunk_size, tail_chunk_size=None, pack=True):
    """A toy attack through :func:`loops.for_active_runs`: run ``r`` fools sample ``s`` iff
    ``success[s, r]``; a fooled sample keeps its first successful run's input ``1000 r + s``. Returns
    (kept input, fooled, times each (sample, run) pair ran, chunks run)."""
    b, n_runs = success.shape

    def run_rows(rows, runs, valid, inputs, _superseded):
        return success[rows, runs], inputs, jnp.zeros(rows.shape[0], jnp.int32).at[0].set(1)

    def record(results, rows, valid, outputs):
        kept, fooled, pairs, n_chunks = results
        hit, inputs, first_of_chunk = outputs
        first = hit & ~fooled[rows]
        kept_rows = jnp.where(first, inputs, kept[rows])
        pairs = pairs.at[jnp.where(valid, rows, b), jnp.where(valid, jnp.minimum(inputs // 1000, n_runs - 1), 0)].add(
            1, mode="drop")
        # count a chunk once: on the record call of its first run
        n_chunks = n_chunks + jnp.any(valid & (first_of_chunk == 1))
        return loops.scatter_rows((kept, fooled), rows, valid, (kept_rows, fooled[rows] | hit)) + (pairs, n_chunks)

    init = (jnp.full(b, -1), jnp.zeros(b, bool), jnp.zeros((b, n_runs), jnp.int32), jnp.asarray(0))
    return loops.for_active_runs(run_rows, record, init, active=lambda results: ~results[1], n_runs=n_runs,
                                 chunk_size=chunk_size, tail_chunk_size=tail_chunk_size, pack=pack,
                                 row_inputs=lambda rows, runs: 1000 * runs + rows)


@pytest.mark.parametrize("chunk_size, tail_chunk_size", [(8, None), (5, None), (8, 2), (16, None)])
def test_for_active_runs_keeps_each_samples_first_success_as_runs_one_after_another_would(chunk_size,
                                                                                          tail_chunk_size):
    success = jax.random.bernoulli(jax.random.key(3), 0.25, (12, 9))
    run = jax.jit(functools.partial(first_successes, chunk_size=chunk_size, tail_chunk_size=tail_chunk_size),
                  static_argnames="pack")
    kept, fooled, pairs, chunks_packed = run(success)
    first = np.argmax(np.asarray(success), axis=1)
    expected_fooled = np.asarray(success).any(axis=1)
    np.testing.assert_array_equal(np.asarray(fooled), expected_fooled)
    np.testing.assert_array_equal(np.asarray(kept), np.where(expected_fooled, 1000 * first + np.arange(12), -1))
    # every sample ran every run up to its first success (packing may add later runs in padding rows)
    ran = np.asarray(pairs) > 0
    for s in range(12):
        last = first[s] if expected_fooled[s] else 8
        assert ran[s, :last + 1].all(), (s, ran[s])
    one_at_a_time = run(success, pack=False)
    for a, b in zip(one_at_a_time[:2], (kept, fooled)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (np.asarray(one_at_a_time[2]) <= np.asarray(pairs)).all()  # unpacked runs no pair twice ...
    assert np.asarray(one_at_a_time[2]).max() == 1
    assert int(chunks_packed) < int(one_at_a_time[3])  # ... but takes more chunks


def test_for_active_runs_packs_the_runs_of_few_samples_into_one_chunk():
    """Two samples never fooled, 9 runs, chunks of 8: after run 0, four runs per chunk (8 // 2), so
    runs 1-8 take two chunks instead of eight."""
    success = jnp.zeros((10, 9), bool).at[2:, 0].set(True)  # run 0 fools all but samples 0 and 1
    _, fooled, pairs, n_chunks = jax.jit(functools.partial(first_successes, chunk_size=8))(success)
    assert int(fooled.sum()) == 8
    # run 0: chunks of 8 + 2 (10 active); then runs 1-4 and 5-8 in one chunk each
    assert int(n_chunks) == 2 + 2
    np.testing.assert_array_equal(np.asarray(pairs)[:2], np.ones((2, 9)))
