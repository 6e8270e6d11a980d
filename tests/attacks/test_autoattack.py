"""AutoAttack in JAX: APGD (schedule, strength), APGD-T, Square, FAB and the ensemble."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_models import (
    IMAGE_SHAPE,
    NUM_CLASSES,
    batch_invariant_mlp_apply,
    linear_logits_fn,
    mlp_apply,
    random_linear_model,
    trained_mlp,
)

from gfa_jax import attacks
from gfa_jax.attacks import base
from gfa_jax.attacks.gradient.apgd import (
    _schedule_arrays,
    apgd,
    apgd_single_run,
    checkpoint_schedule,
)
from gfa_jax.attacks.gradient.apgd_t import apgd_targeted
from gfa_jax.attacks.ensemble.autoattack import (
    CLEAN_MISCLASSIFIED,
    ROBUST,
    attack_list,
    autoattack_report,
    run_member,
)
from gfa_jax.attacks.minimum_norm.fab import fab_bounded, fab_minimum_norm
from gfa_jax.attacks.black_box.square import _query_draws, _random_pos, square_single_run

BOUNDS = (-1.0, 1.0)
N = 64


@pytest.fixture(scope="module")
def mlp():
    params, x, y = trained_mlp()
    return (lambda z: mlp_apply(params, z)), x[:N], y[:N]


def _acc(f, x, y):
    return float(jnp.mean(jnp.argmax(f(x), -1) == y))


def _linf(a, b):
    return np.asarray(base.per_sample_norm(a - b, "inf"))


def _l2(a, b):
    return np.asarray(base.per_sample_norm(a - b, 2))


# ----------------------------------------------------------------------------- APGD


def test_checkpoint_schedule_matches_reference_for_100_iterations():
    # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), w_j = ceil(p_j * 100),
    # in integer percent (exact): 22, 22+19, 41+16, 57+13, 70+10, 80+7, 87+6, 93+6 (then 105 > 100).
    percents = [0, 22]
    while True:
        nxt = percents[-1] + max(percents[-1] - percents[-2] - 3, 6)
        if nxt > 100:
            break
        percents.append(nxt)
    expected = percents[1:]
    assert expected == [22, 41, 57, 70, 80, 87, 93, 99]
    checkpoints, windows = checkpoint_schedule(100)
    assert checkpoints == expected
    assert windows == [22, 19, 16, 13, 10, 7, 6, 6]
    is_ck, window = _schedule_arrays(100)  # per pass of the loop: pass 0 evaluates the start, pass k makes step k
    assert len(is_ck) == 101 and list(np.flatnonzero(is_ck)) == expected
    assert list(window[is_ck].astype(int)) == windows


def _reference_apgd_run(loss_fn, f, x, x_start, eps, norm, n_iter, rho=0.75):
    """``autopgd_base.attack_single_run`` written out step by step as the reference does (a Python
    loop over every iteration), with the one documented deviation: the first window's first increase
    is counted against the start's loss. Returns ``(x_best, loss_best)``."""
    project = base.project_linf if norm == "linf" else base.project_l2
    expand = lambda v: v.reshape((-1,) + (1,) * (x.ndim - 1))  # noqa: E731

    def evaluate(z):
        loss, vjp = jax.vjp(lambda u: loss_fn(f(u)), z)
        return loss, vjp(jnp.ones_like(loss))[0]

    checkpoints, windows = checkpoint_schedule(n_iter)
    loss, grad = evaluate(x_start)
    x_adv = x_old = x_best = x_start
    grad_best, loss_best, loss_prev = grad, loss, loss
    step_size = jnp.full(loss.shape, 2.0 * eps)
    n_inc = jnp.zeros(loss.shape)
    loss_best_last, reduced_last = loss, jnp.ones(loss.shape, bool)
    for i in range(n_iter):
        a = 0.75 if i > 0 else 1.0
        direction = jnp.sign(grad) if norm == "linf" else base.normalize_l2(grad)
        z = project(x_adv + expand(step_size) * direction, x, eps, BOUNDS)
        x_adv, x_old = project(x_adv + (z - x_adv) * a + (x_adv - x_old) * (1 - a), x, eps, BOUNDS), x_adv
        loss, grad = evaluate(x_adv)
        n_inc = n_inc + (loss > loss_prev)
        loss_prev = loss
        improved = loss > loss_best
        x_best = jnp.where(expand(improved), x_adv, x_best)
        grad_best = jnp.where(expand(improved), grad, grad_best)
        loss_best = jnp.where(improved, loss, loss_best)
        if i + 1 in checkpoints:
            window = windows[checkpoints.index(i + 1)]
            reduce = (n_inc <= window * rho) | (~reduced_last & (loss_best_last >= loss_best))
            step_size = jnp.where(reduce, step_size / 2.0, step_size)
            x_adv = jnp.where(expand(reduce), x_best, x_adv)
            grad = jnp.where(expand(reduce), grad_best, grad)
            reduced_last, loss_best_last, n_inc = reduce, loss_best, jnp.zeros(loss.shape)
    return x_best, loss_best


@pytest.mark.parametrize("norm,eps,atol", [("linf", 0.1, 1e-5), ("l2", 0.3, 1e-3)])
def test_apgd_single_run_follows_the_reference_step_by_step(norm, eps, atol):
    # A wavy model (the loss peaks inside the ball, so every step size, momentum and halving shows in
    # the best point) and a success test that never fires (class 10 is never predicted), so that
    # every sample runs all 30 steps: checkpoints after steps 6, 11, 15, 18, 20, ..., 30.
    k_in, k_out, k_x, k_start = jax.random.split(jax.random.key(11), 4)
    w_in = jax.random.normal(k_in, (16, 32))
    w_out = jax.random.normal(k_out, (32, 10)) / 4
    f = lambda z: jnp.pad(jnp.sin(3.0 * z.reshape(z.shape[0], -1) @ w_in) @ w_out, ((0, 0), (0, 1)),  # noqa: E731
                          constant_values=-1e9)
    x = jax.random.uniform(k_x, (64, 4, 4, 1), minval=-0.8, maxval=0.8)
    label = jnp.argmax(f(x), -1)
    # (shifted below zero, as DLR losses are: the start's loss must not be compared with a placeholder)
    loss_fn = lambda logits: base.cross_entropy(logits, label) - 10.0  # noqa: E731
    unit = jax.random.rademacher(k_start, x.shape, x.dtype) / (1.0 if norm == "linf" else 4.0)
    x_start = base.clip_to_bounds(x + 0.5 * eps * unit, BOUNDS)
    never = jnp.full(label.shape, 10)
    x_best, fooled, loss_best, _ = jax.jit(lambda: apgd_single_run(
        loss_fn, f, x, never, None, eps=eps, bounds=BOUNDS, norm=norm, n_iter=30, targeted_success=True,
        x_start=x_start))()
    ref_best, ref_loss = _reference_apgd_run(loss_fn, f, x, x_start, eps, norm, 30)
    assert not np.any(fooled)
    # Float rounding differs between the compiled loop and these unrolled steps (an L-inf step's sign
    # can flip where a gradient entry is ~0): most samples, not all, must land where the reference does.
    apart = np.abs(np.asarray(x_best) - np.asarray(ref_best)).reshape(len(x), -1).max(axis=1)
    assert np.mean(apart <= atol) >= 0.9, np.sort(apart)
    np.testing.assert_allclose(np.median(np.asarray(loss_best)), np.median(np.asarray(ref_loss)), rtol=1e-5)


def _pgd(f, x, y, key, eps, n_iter):
    """Plain L-inf PGD on CE (Madry et al.): uniform random start, fixed step 2.5 * eps / n_iter."""
    objective = base.attack_objective(f, "ce", False)
    x_adv = base.project_linf(x + jax.random.uniform(key, x.shape, minval=-eps, maxval=eps), x, eps, BOUNDS)

    def body(_, xa):
        _, g = base.input_gradient(objective, xa, y)
        return base.project_linf(xa + 2.5 * eps / n_iter * jnp.sign(g), x, eps, BOUNDS)

    return jax.lax.fori_loop(0, n_iter, body, x_adv)


def test_apgd_at_least_as_strong_as_pgd_at_equal_budget(mlp):
    # On this tiny MLP the outcome of a single run is decided mostly by the random start (both attacks
    # converge within ~10 steps), so robust accuracy is averaged over 32 random starts (keys): at eps
    # 0.3 both leave 2-4 % robust, too close for 8 starts (with one way of drawing the starts, 8 put
    # APGD behind at 2 of 4 seeds; 32 never did).
    f, x, y = mlp
    keys = jax.random.split(jax.random.key(0), 32)
    n_iter = 10
    run_apgd = jax.jit(jax.vmap(lambda k, e: apgd(f, x, y, k, bounds=BOUNDS, eps=e, n_iter=n_iter), (0, None)))
    run_pgd = jax.jit(jax.vmap(lambda k, e: _pgd(f, x, y, k, e, n_iter), (0, None)))

    def robust_acc(xs):
        return float(jnp.mean(jax.vmap(lambda xa: jnp.argmax(f(xa), -1) == y)(xs)))

    accs = []
    for eps in (0.15, 0.2, 0.25, 0.3):
        xa, xp = run_apgd(keys, eps), run_pgd(keys, eps)
        assert max(_linf(xi, x).max() for xi in xa) <= eps + 1e-6
        assert float(xa.min()) >= -1.0 and float(xa.max()) <= 1.0
        accs.append((robust_acc(xa), robust_acc(xp)))
    for acc_apgd, acc_pgd in accs:
        assert acc_apgd <= acc_pgd, accs
    assert accs[-1][0] < 0.5


def test_apgd_l2_in_ball_and_vmaps_over_eps(mlp):
    f, x, y = mlp
    epss = jnp.array([0.5, 1.5])
    out = jax.jit(jax.vmap(lambda e: apgd(f, x, y, jax.random.key(1), bounds=BOUNDS, eps=e, norm="l2", n_iter=8)))(epss)
    for e, xa in zip(epss, out):
        assert _l2(xa, x).max() <= float(e) + 1e-5
        assert float(xa.min()) >= -1.0 and float(xa.max()) <= 1.0
    assert _acc(f, out[1], y) <= _acc(f, out[0], y)


def test_dlr_losses_invariant_to_shift_and_positive_scale():
    logits = jax.random.normal(jax.random.key(0), (16, 6))
    y = jax.random.randint(jax.random.key(1), (16,), 0, 6)
    t = (y + 1) % 6
    for scale, shift in ((3.0, 0.0), (0.2, -5.0), (7.0, 11.0)):
        z = scale * logits + shift
        np.testing.assert_allclose(base.dlr(z, y), base.dlr(logits, y), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(base.dlr_targeted(z, y, t), base.dlr_targeted(logits, y, t), rtol=1e-4, atol=1e-5)
    # CE is not scale invariant (the reason DLR exists)
    assert not np.allclose(base.cross_entropy(3.0 * logits, y), base.cross_entropy(logits, y))


def test_apgd_t_at_least_as_strong_as_apgd_ce_and_reaches_targets(mlp):
    f, x, y = mlp
    key = jax.random.key(2)
    eps = 0.2
    x_ce = jax.jit(lambda: apgd(f, x, y, key, bounds=BOUNDS, eps=eps, n_iter=10))()
    x_t = jax.jit(lambda: apgd_targeted(f, x, y, key, bounds=BOUNDS, eps=eps, n_iter=10, n_target_classes=3))()
    assert _linf(x_t, x).max() <= eps + 1e-6
    assert _acc(f, x_t, y) <= _acc(f, x_ce, y)

    # one targeted-DLR run towards the 2nd most likely class drives most samples to that class
    target = jnp.argsort(f(x), axis=-1)[:, -2]
    _, fooled, _, x_adv = jax.jit(lambda: apgd_single_run(
        lambda z: base.dlr_targeted(z, y, target), f, x, y, key, eps=0.35, bounds=BOUNDS, norm="linf",
        n_iter=10))()
    pred = jnp.argmax(f(x_adv), -1)
    assert float(jnp.mean(fooled)) > 0.8
    assert float(jnp.mean(jnp.where(fooled, pred == target, False))) > 0.6


# ----------------------------------------------------------------------------- Square


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_square_query_draws_cover_every_position_and_both_signs(norm):
    b, c, size, s = 4000, 3, 8, 3
    draws = _query_draws(jax.random.key(4), norm, b, c)
    assert draws["sign"].shape == (b, 1, 1, c)
    assert set(np.unique(np.asarray(draws["sign"])).tolist()) == {-1.0, 1.0}
    assert abs(float(jnp.mean(draws["sign"]))) < 0.05
    for name in ("vh", "vw") + (("vh2", "vw2") if norm == "l2" else ()):
        positions = np.asarray(_random_pos(draws[name], size, s))
        counts = np.bincount(positions, minlength=size - s + 1)  # the reference's randint(0, size - s)
        assert len(counts) == size - s + 1 and counts[-1] == 0 and counts[:-1].min() > 0.8 * b / (size - s)
    # the quantities are drawn independently of one another
    assert abs(np.corrcoef(np.asarray(draws["vh"]), np.asarray(draws["vw"]))[0, 1]) < 0.05


@pytest.mark.parametrize("norm,eps", [("linf", 0.25), ("l2", 1.5)])
def test_square_only_accepts_improvements_and_stays_in_ball(mlp, norm, eps):
    f, x, y = mlp
    run = jax.jit(lambda k: square_single_run(f, x, y, k, eps=eps, bounds=BOUNDS, norm=norm, n_queries=40))
    x_best, margin_min, loss_min, margin_init, loss_init = run(jax.random.key(3))
    assert bool(jnp.all(loss_min <= loss_init))
    assert bool(jnp.all(margin_min <= margin_init + 1e-6))
    margin_now = -base.margin(f(x_best), y)  # z_y - max_{j != y} z_j of the returned point
    np.testing.assert_allclose(margin_now, margin_min, rtol=1e-5, atol=1e-5)
    assert float(jnp.mean(margin_min < margin_init)) > 0.5  # it does make progress
    dist = _linf(x_best, x) if norm == "linf" else _l2(x_best, x)
    assert dist.max() <= eps + 1e-5
    assert float(x_best.min()) >= -1.0 and float(x_best.max()) <= 1.0


# ----------------------------------------------------------------------------- FAB


def test_fab_finds_minimal_linf_distance_on_linear_model():
    w, b = random_linear_model(jax.random.key(3))
    f = linear_logits_fn(w, b)
    x = jax.random.uniform(jax.random.key(4), (16,) + IMAGE_SHAPE, minval=-0.5, maxval=0.5)
    y = jnp.argmax(f(x), -1)
    logits = f(x)
    z_y = jnp.take_along_axis(logits, y[:, None], 1)
    w_diff_l1 = jnp.sum(jnp.abs(w[:, y].T[:, None, :] - w.T[None]), -1)  # ||w_y - w_j||_1, [B, K]
    dist = jnp.where(jax.nn.one_hot(y, NUM_CLASSES, dtype=bool), jnp.inf, (z_y - logits) / w_diff_l1).min(1)
    assert float(dist.max()) < 0.4  # the box [-1, 1] is not active

    res = jax.jit(lambda: fab_minimum_norm(f, x, y, jax.random.key(0), bounds=BOUNDS, n_iter=6))()
    assert bool(res.success.all())
    assert bool(jnp.all(jnp.argmax(f(res.x_adv), -1) != y))
    ratio = np.asarray(res.norm / dist)
    assert ratio.min() >= 1.0 - 1e-4 and ratio.max() <= 1.06, ratio

    # bounded use (as in AutoAttack): only results within eps count, others return x
    eps = float(jnp.median(dist))
    x_b = jax.jit(lambda: fab_bounded(f, x, y, jax.random.key(0), bounds=BOUNDS, eps=eps, n_iter=6))()
    fooled = np.asarray(jnp.argmax(f(x_b), -1) != y)
    assert _linf(x_b, x).max() <= eps + 1e-6
    assert np.all(fooled[np.asarray(dist) * 1.06 < eps])
    assert not np.any(fooled[np.asarray(dist) > eps])
    np.testing.assert_array_equal(np.asarray(x_b)[~fooled], np.asarray(x)[~fooled])


# ----------------------------------------------------------------------------- AutoAttack


def test_autoattack_at_least_as_strong_as_each_member_and_record_consistent(mlp):
    f, x, y = mlp
    key = jax.random.key(5)
    eps = 0.2
    kw = dict(n_iter=6, n_target_classes=2, n_queries=30)
    names = attack_list("standard", "linf")
    assert names == ("apgd-ce", "apgd-t", "fab-t", "square")

    # One program: the ensemble, and each member alone with the key the ensemble gives it (XLA may share
    # their common work; compiled apart, the members cost as much as the ensemble again).
    def ensemble_and_members(k):
        members = [run_member(n, f, x, y, jax.random.fold_in(k, i), eps=eps, bounds=BOUNDS, norm="linf", **kw)
                   for i, n in enumerate(names)]
        return autoattack_report(f, x, y, k, bounds=BOUNDS, eps=eps, **kw), members

    report, member_x_adv = jax.jit(ensemble_and_members)(key)
    first = np.asarray(report.first_success)
    x_adv = report.x_adv
    assert _linf(x_adv, x).max() <= eps + 1e-6
    fooled_ens = np.asarray(jnp.argmax(f(x_adv), -1) != y)

    fooled_members = []
    for name, xm in zip(names, member_x_adv):
        assert _linf(xm, x).max() <= eps + 1e-6
        fooled_members.append(np.asarray(jnp.argmax(f(xm), -1) != y))
        # robust under the ensemble => robust under this member
        assert not np.any(~fooled_ens & fooled_members[-1]), name
    fooled_members = np.stack(fooled_members)

    clean_wrong = np.asarray(jnp.argmax(f(x), -1) != y)
    assert np.all((first == CLEAN_MISCLASSIFIED) == clean_wrong)
    assert np.all((first == ROBUST) == (~fooled_members.any(0) & ~clean_wrong))
    for i in range(len(names)):
        sel = first == i
        assert np.all(fooled_members[i][sel])
        assert not np.any(fooled_members[:i][:, sel])
    assert np.all(fooled_ens == (first != ROBUST))
    np.testing.assert_array_equal(np.asarray(x_adv)[first == ROBUST], np.asarray(x)[first == ROBUST])

    acc = np.asarray(report.robust_accuracy)
    assert acc.shape == (len(names) + 1,)
    assert np.all(np.diff(acc) <= 0)
    np.testing.assert_allclose(acc[0], 1.0 - clean_wrong.mean())
    for i in range(len(names) + 1):
        np.testing.assert_allclose(acc[i], np.mean((first == ROBUST) | (first >= i)))
    assert acc[-1] < acc[0]


# ----------------------------------------------------------------------------- compaction

COMPACTION_CASES = {
    "apgd": {"eps": 0.2, "n_iter": 8, "n_restarts": 2},
    "apgd_t": {"eps": 0.2, "n_iter": 6, "n_target_classes": 3},
    "fab_t": {"eps": 0.2, "n_iter": 6, "n_target_classes": 3},
    "square": {"eps": 0.2, "n_queries": 30, "n_restarts": 2},
}


@pytest.mark.parametrize("name", sorted(COMPACTION_CASES))
def test_compacted_runs_match_the_masked_full_batch(name):
    """Chunks of 5 (the last one padded) give each sample what one full-batch chunk gives it, and the
    model only ever sees the whole batch (clean logits) or chunk-sized batches."""
    params, x, y = trained_mlp()
    x, y = x[:N], y[:N]
    f = lambda z: batch_invariant_mlp_apply(params, z)  # noqa: E731
    seen = set()

    def logits_fn(z):
        seen.add(z.shape[0])
        return f(z)

    fn = attacks.get_attack(name).fn
    run = lambda c: jax.jit(lambda: fn(logits_fn, x, y, jax.random.key(4), bounds=BOUNDS, chunk_size=c,  # noqa: E731
                                       **COMPACTION_CASES[name]))()
    x_full = run(N)
    seen.clear()
    x_chunked = run(5)
    assert seen <= {N, 5} and 5 in seen
    fooled_full = np.asarray(jnp.argmax(f(x_full), -1) != y)
    fooled_chunked = np.asarray(jnp.argmax(f(x_chunked), -1) != y)
    assert 0 < fooled_full.sum() < N  # both outcomes occur
    np.testing.assert_array_equal(fooled_chunked, fooled_full)
    # a sample left robust ran the same iterations from the same start: the same point (a fooled
    # one may stop at a different misclassified point: its loop ends with its chunk's)
    robust = ~fooled_full
    np.testing.assert_allclose(np.asarray(x_chunked)[robust], np.asarray(x_full)[robust], atol=1e-6)


def test_square_tail_chunks_match_the_masked_full_batch():
    """Square's leftover samples in chunks of 2 after chunks of 5: the same points as one masked chunk."""
    params, x, y = trained_mlp()
    x, y = x[:N], y[:N]
    seen = set()

    def logits_fn(z):
        seen.add(z.shape[0])
        return batch_invariant_mlp_apply(params, z)

    run = lambda c, t: jax.jit(lambda: attacks.get_attack("square").fn(  # noqa: E731
        logits_fn, x, y, jax.random.key(4), bounds=BOUNDS, chunk_size=c, tail_chunk_size=t,
        **COMPACTION_CASES["square"]))()
    x_full = run(N, None)
    seen.clear()
    x_tail = run(5, 2)
    assert seen <= {N, 5, 2} and 2 in seen
    np.testing.assert_allclose(np.asarray(x_tail), np.asarray(x_full), atol=1e-6)


def test_autoattack_members_spend_nothing_on_skipped_samples(mlp):
    f, x, y = mlp
    rows_seen = []

    def logits_fn(z):
        jax.debug.callback(lambda n: rows_seen.append(int(n)), z.shape[0])
        return f(z)

    skip = jnp.arange(N) >= 3  # attack three samples only
    for name in ("apgd-ce", "apgd-t", "fab-t", "square"):
        rows_seen.clear()
        x_adv = jax.jit(lambda: run_member(name, logits_fn, x, y, jax.random.key(5), eps=0.1, bounds=BOUNDS,
                                           norm="linf", n_iter=5, n_target_classes=2, n_queries=8, skip=skip,
                                           chunk_size=4))()
        jax.block_until_ready(x_adv)
        np.testing.assert_array_equal(np.asarray(x_adv)[3:], np.asarray(x)[3:])
        # clean logits see the whole batch; every run sees one chunk of 4 (three samples and padding)
        assert sum(n for n in rows_seen if n != N) > 0
        assert all(n in (N, 4) for n in rows_seen), sorted(set(rows_seen))
