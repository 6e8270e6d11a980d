"""Minimum-norm attacks (DeepFool L2/L-inf, C&W L2, EAD) against closed forms on a linear model,
plus the MinNormResult contract on a small trained MLP."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_models import (
    BOUNDS,
    batch_invariant_mlp_apply,
    linear_logits_fn,
    mlp_apply,
    random_linear_model,
    trained_mlp,
)

from gfa_jax import attacks

OVERSHOOT = 0.02
STEP_EPS = 1e-4  # DeepFool's per-step "pert + 1e-4"


def _fn(name):
    return attacks.get_attack(name).fn


@pytest.fixture(scope="module")
def linear():
    """A linear model and 6 inputs near the centre of the box, pushed towards their own class so the
    L2 distances to the decision boundary are ~0.1-0.6 (the box is never active)."""
    weights, bias = random_linear_model(jax.random.key(1))
    logits_fn = linear_logits_fn(weights, bias)
    x0 = 0.1 * jax.random.normal(jax.random.key(2), (6, 6, 6, 1))
    y = jnp.argmax(logits_fn(x0), -1)
    push = weights[:, y].T - weights.mean(1)[None]
    push = push / jnp.linalg.norm(push, axis=1, keepdims=True)
    x = x0 + 0.3 * push.reshape(x0.shape)
    assert bool(jnp.all(jnp.argmax(logits_fn(x), -1) == y))
    assert float(jnp.max(jnp.abs(x))) < 0.5

    # closed forms: distance to the union of half-spaces {z_j >= z_y}, in L2, L-inf and L1
    w = np.asarray(weights)
    logits = np.asarray(logits_fn(x))
    dists = {2: [], "inf": [], 1: []}
    for i, yi in enumerate(np.asarray(y)):
        gaps = logits[i, yi] - np.delete(logits[i], yi)
        diff = np.delete(w, yi, axis=1) - w[:, [yi]]  # [D, K-1]
        dists[2].append(np.min(gaps / np.linalg.norm(diff, axis=0)))
        dists["inf"].append(np.min(gaps / np.abs(diff).sum(0)))  # dual norm of L-inf is L1
        dists[1].append(np.min(gaps / np.abs(diff).max(0)))  # dual norm of L1 is L-inf
    dists = {k: np.asarray(v) for k, v in dists.items()}
    assert 0.1 < dists[2].min() and dists[2].max() < 0.8
    return logits_fn, x, y, dists


@pytest.fixture(scope="module")
def mlp():
    params, x, y = trained_mlp()
    return (lambda v: mlp_apply(params, v)), x[:6], y[:6]


def _check_misclassified(logits_fn, res, y):
    pred = jnp.argmax(logits_fn(res.x_adv), -1)
    np.testing.assert_array_equal(np.asarray(res.success), np.asarray(pred != y))


@pytest.mark.parametrize("name,ord", [("deepfool", 2), ("deepfool_linf", "inf")])
def test_deepfool_linear_closed_form(linear, name, ord):
    logits_fn, x, y, dists = linear
    res = jax.jit(lambda x_, y_: _fn(name)(logits_fn, x_, y_, None, bounds=BOUNDS, max_iter=2))(x, y)
    assert bool(jnp.all(res.success))
    _check_misclassified(logits_fn, res, y)
    expected = (1 + OVERSHOOT) * (dists[ord] + STEP_EPS)
    np.testing.assert_allclose(np.asarray(res.norm), expected, rtol=1e-4)
    norm_ord = 2 if ord == 2 else "linf"
    np.testing.assert_allclose(np.asarray(res.norm), np.asarray(attacks.base.per_sample_norm(res.x_adv - x, norm_ord)),
                               rtol=1e-5)


@pytest.mark.parametrize("name", ["deepfool", "deepfool_linf"])
def test_deepfool_batched_equals_per_sample(mlp, name):
    logits_fn, x, y = mlp
    attack = jax.jit(lambda x_, y_: _fn(name)(logits_fn, x_, y_, None, bounds=BOUNDS))
    batched = attack(x, y)
    singles = [attack(x[i:i + 1], y[i:i + 1]) for i in range(x.shape[0])]
    assert bool(jnp.all(batched.success))
    for field in range(3):
        np.testing.assert_allclose(np.asarray(batched[field]),
                                   np.concatenate([np.asarray(s[field]) for s in singles]), rtol=1e-4, atol=1e-5)


def test_deepfool_already_misclassified_and_top_classes(mlp):
    logits_fn, x, y = mlp
    wrong = (y + 1) % 4
    res = _fn("deepfool")(logits_fn, x, wrong, None, bounds=BOUNDS)
    pre = jnp.argmax(logits_fn(x), -1) != wrong
    np.testing.assert_array_equal(np.asarray(res.norm)[np.asarray(pre)], 0.0)
    res = _fn("deepfool")(logits_fn, x, y, None, bounds=BOUNDS, num_classes=2)  # only the runner-up class as candidate
    _check_misclassified(logits_fn, res, y)


def test_cw_l2_linear_near_minimal(linear):
    logits_fn, x, y, dists = linear
    res = jax.jit(lambda x_, y_: _fn("cw_l2")(logits_fn, x_, y_, None, bounds=BOUNDS, steps=200))(x, y)
    assert bool(jnp.all(res.success))
    _check_misclassified(logits_fn, res, y)
    norm = np.asarray(res.norm)
    assert np.all(norm >= dists[2] * (1 - 1e-4)), (norm, dists[2])  # nothing is closer than the boundary
    assert np.all(norm <= dists[2] * 1.05), (norm / dists[2])


def test_cw_l2_targeted(linear):
    logits_fn, x, y, _ = linear
    target = (y + 1) % 4
    res = _fn("cw_l2")(logits_fn, x, target, None, bounds=BOUNDS, targeted=True, steps=100,
                        binary_search_steps=6)
    assert bool(jnp.all(res.success))
    np.testing.assert_array_equal(np.asarray(jnp.argmax(logits_fn(res.x_adv), -1)), np.asarray(target))


def test_ead_rules_linear(linear):
    logits_fn, x, y, dists = linear
    kw = dict(bounds=BOUNDS, steps=200, binary_search_steps=6)
    res_en = jax.jit(lambda x_, y_: _fn("ead_en")(logits_fn, x_, y_, None, **kw))(x, y)
    res_l1 = jax.jit(lambda x_, y_: _fn("ead_l1")(logits_fn, x_, y_, None, **kw))(x, y)
    for res in (res_en, res_l1):
        assert bool(jnp.all(res.success))
        _check_misclassified(logits_fn, res, y)
        np.testing.assert_allclose(np.asarray(res.norm),
                                   np.asarray(attacks.base.per_sample_norm(res.x_adv - x, 1)), rtol=1e-5)
        assert np.all(np.asarray(res.norm) >= dists[1] * (1 - 1e-4))  # minimal L1 distance
    assert np.all(np.asarray(res_l1.norm) <= np.asarray(res_en.norm) * (1 + 1e-6))


@pytest.mark.parametrize("name", ["cw_l2", "ead_en"])
def test_early_abort_compaction_changes_nothing_and_skips_stopped_samples(name):
    """Chunks of 4 with tails of 2 give every sample what the masked full batch gives it (to float
    rounding: XLA may vectorise a chunk's arithmetic differently), and the model runs on fewer
    sample-steps once samples stop."""
    params, x, y = trained_mlp()
    x, y = x[:12], y[:12]
    rows = []

    def logits_fn(z):
        jax.debug.callback(lambda n: rows.append(int(n)), z.shape[0])
        return batch_invariant_mlp_apply(params, z)

    fn = _fn(name)
    kw = dict(bounds=BOUNDS, steps=40, binary_search_steps=2, initial_const=1.0)
    full = jax.jit(lambda: fn(logits_fn, x, y, None, chunk_size=12, **kw))()
    jax.block_until_ready(full)
    full_rows, rows[:] = sum(rows), []
    chunked = jax.jit(lambda: fn(logits_fn, x, y, None, chunk_size=4, tail_chunk_size=2, **kw))()
    jax.block_until_ready(chunked)
    assert set(rows) <= {4, 2} and 2 in rows
    np.testing.assert_array_equal(np.asarray(chunked.success), np.asarray(full.success))
    np.testing.assert_allclose(np.asarray(chunked.x_adv), np.asarray(full.x_adv), atol=1e-6)
    np.testing.assert_allclose(np.asarray(chunked.norm), np.asarray(full.norm), rtol=1e-5)
    assert 0 < int(full.success.sum())
    assert sum(rows) < 0.8 * full_rows, (sum(rows), full_rows)


def reference_ead_run(w, b, x, y, *, const, beta, lr, steps):
    """The authors' ``en_attack.py`` loop for one ``c`` on a linear model, in numpy: gradient step on the
    slack y, shrinkage, momentum ``t / (t + 3)`` with the counter already incremented; returns the
    adversarial iterate with the smallest elastic-net distance per sample (``x`` where none)."""
    lo, hi = BOUNDS
    flat = x.reshape(len(x), -1)
    x_k, y_k = flat.copy(), flat.copy()
    best, best_en = flat.copy(), np.full(len(x), np.inf)
    rows = np.arange(len(x))
    for k in range(steps):
        z = y_k @ w + b
        other = np.where(np.eye(w.shape[1], dtype=bool)[y], -np.inf, z).argmax(1)
        active = (z[rows, y] - z[rows, other]) > 0  # hinge gradient w_y - w_other where positive
        grad = const * active[:, None] * (w[:, y] - w[:, other]).T + 2 * (y_k - flat)
        slack = y_k - lr * (1 - k / steps) ** 0.5 * grad
        d = slack - flat
        new = np.where(d > beta, np.minimum(slack - beta, hi), np.where(d < -beta, np.maximum(slack + beta, lo), flat))
        y_k, x_k = new + (k + 1) / (k + 4) * (new - x_k), new
        z = x_k @ w + b
        en = np.sum((x_k - flat) ** 2, 1) + beta * np.abs(x_k - flat).sum(1)
        better = (z.argmax(1) != y) & (en < best_en)
        best[better], best_en[better] = x_k[better], en[better]
    return best.reshape(x.shape)


def test_ead_follows_the_reference_fista_loop(linear):
    """Without early abort, one ``c``: the same iterates as the authors' loop, momentum factor included."""
    logits_fn, x, y, _ = linear
    weights, bias = random_linear_model(jax.random.key(1))
    kw = dict(const=2.0, beta=0.01, lr=0.03, steps=12)
    res = _fn("ead_en")(logits_fn, x, y, None, bounds=BOUNDS, binary_search_steps=1, initial_const=kw["const"],
                        beta=kw["beta"], learning_rate=kw["lr"], steps=kw["steps"], abort_early=False)
    expected = reference_ead_run(np.asarray(weights, np.float64), np.asarray(bias, np.float64),
                                 np.asarray(x, np.float64), np.asarray(y), **kw)
    assert 0 < int(res.success.sum()) < len(y)  # some samples cross the boundary, some do not
    np.testing.assert_allclose(np.asarray(res.x_adv), expected, atol=1e-5)


MIN_NORM = {"deepfool": "l2", "deepfool_linf": "linf", "cw_l2": "l2", "ead_en": "l1", "ead_l1": "l1"}


@pytest.mark.parametrize("name", sorted(MIN_NORM))
def test_min_norm_contract(mlp, name):
    """Registered as minimum_norm; deterministic; in bounds; success <=> misclassified; x_adv = x and
    norm = inf on failure; norm is the metric's norm; vmap over stacked models runs."""
    logits_fn, x, y = mlp
    spec = attacks.get_attack(name)
    assert spec.kind == "minimum_norm" and spec.norm == MIN_NORM[name]
    attack = jax.jit(lambda x_, y_: spec.fn(logits_fn, x_, y_, jax.random.key(0), bounds=BOUNDS, **spec.test_kwargs))
    res, res2 = attack(x, y), attack(x, y)
    for a, b in zip(res, res2):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert res.x_adv.shape == x.shape and res.success.shape == res.norm.shape == y.shape
    assert float(res.x_adv.min()) >= BOUNDS[0] and float(res.x_adv.max()) <= BOUNDS[1]
    _check_misclassified(logits_fn, res, y)
    fail = ~np.asarray(res.success)
    np.testing.assert_array_equal(np.asarray(res.x_adv)[fail], np.asarray(x)[fail])
    assert np.all(np.isinf(np.asarray(res.norm)[fail]))
    ok = ~fail
    measured = np.asarray(attacks.base.per_sample_norm(res.x_adv - x, MIN_NORM[name]))
    np.testing.assert_allclose(np.asarray(res.norm)[ok], measured[ok], rtol=1e-4, atol=1e-6)


def test_vmap_over_models(linear):
    """vmap over two stacked linear models (parameters closed over as tracers)."""
    _, x, y, _ = linear
    weights, bias = zip(*[random_linear_model(jax.random.key(s)) for s in (1, 3)])
    weights, bias = jnp.stack(weights), jnp.stack(bias)

    def run(w, b):
        return _fn("deepfool")(linear_logits_fn(w, b), x, y, None, bounds=BOUNDS, max_iter=3)

    res = jax.jit(jax.vmap(run))(weights, bias)
    single = _fn("deepfool")(linear_logits_fn(weights[1], bias[1]), x, y, None, bounds=BOUNDS, max_iter=3)
    np.testing.assert_allclose(np.asarray(res.norm[1]), np.asarray(single.norm), rtol=1e-4)


@pytest.mark.parametrize("targeted", [False, True])
def test_jsma(mlp, targeted):
    logits_fn, x, y = mlp
    target = (y + 2) % 4
    labels = target if targeted else y
    attack = jax.jit(lambda x_, y_: _fn("jsma")(logits_fn, x_, y_, None, bounds=BOUNDS, gamma=0.3,
                                                 targeted=targeted))
    res, res2 = attack(x, labels), attack(x, labels)
    np.testing.assert_array_equal(np.asarray(res.x_adv), np.asarray(res2.x_adv))
    assert attacks.get_attack("jsma").kind == "minimum_norm"
    pred = jnp.argmax(logits_fn(res.x_adv), -1)
    expected = (pred == target) if targeted else (pred != y)
    np.testing.assert_array_equal(np.asarray(res.success), np.asarray(expected))
    assert bool(jnp.any(res.success))
    assert float(res.x_adv.min()) >= BOUNDS[0] and float(res.x_adv.max()) <= BOUNDS[1]
    ok = np.asarray(res.success)
    l0 = np.sum(np.asarray(res.x_adv != x).reshape(x.shape[0], -1), axis=-1)
    np.testing.assert_array_equal(np.asarray(res.norm)[ok], l0[ok])
    assert np.all(l0 <= 2 * np.ceil(36 * 0.3 / 2))
    np.testing.assert_array_equal(np.asarray(res.x_adv)[~ok], np.asarray(x)[~ok])


def brute_force_pair(t, o, increasing):
    """The reference's pair search: the whole masked ``[D, D]`` map, one argmax over it."""
    a, b = t[:, None] + t[None, :], o[:, None] + o[None, :]
    ok = ((a > 0) & (b < 0)) if increasing else ((a < 0) & (b > 0))
    saliency = np.where(ok & ~np.eye(len(t), dtype=bool), np.abs(a) * np.abs(b), 0.0)
    return divmod(int(np.argmax(saliency)), len(t))


@pytest.mark.parametrize("increasing", [True, False])
def test_jsma_pair_search_matches_the_whole_saliency_map(increasing):
    """Blocks of rows give the pair one argmax over the whole map gives: with D not a multiple of the
    block, with tied pairs (the first in row-major order), and (0, 0) where no pair qualifies."""
    from gfa_jax.attacks.minimum_norm.jsma import best_pair

    rng = np.random.default_rng(0)
    d = 37
    t = rng.integers(-4, 5, (6, d)).astype(np.float32)  # small integers: many exact ties
    o = rng.integers(-4, 5, (6, d)).astype(np.float32)
    t[5], o[5] = 1.0, 1.0  # no pair has alpha > 0 > beta (nor alpha < 0 < beta): (0, 0)
    p, q = jax.jit(best_pair, static_argnums=2)(jnp.asarray(t), jnp.asarray(o), increasing)
    expected = [brute_force_pair(t[i], o[i], increasing) for i in range(len(t))]
    assert expected[5] == (0, 0)
    assert list(zip(np.asarray(p).tolist(), np.asarray(q).tolist())) == expected


def test_fab_sorts_like_xla_on_cpu_and_projects_onto_the_hyperplane_in_the_box(monkeypatch):
    # argsort_rows sorts through NumPy on CPU (XLA:CPU's sort is ~20x slower): the same stable order,
    # ties and vmap included, hence the same projection as with XLA's argsort.
    from gfa_jax.attacks.minimum_norm import fab

    values = jax.random.uniform(jax.random.key(0), (5, 40)).at[:, :8].set(0.5)
    stacked = jnp.stack([values, values[::-1]])
    np.testing.assert_array_equal(jax.jit(fab.argsort_rows)(values), jnp.argsort(values, axis=-1))
    # negative values, signed zeros, infinities and ties: the keyed sort's order is argsort's
    signed = jax.random.normal(jax.random.key(4), (7, 33)).at[:, :4].set(-0.0).at[:, 4:8].set(0.0)
    signed = signed.at[:, 8:10].set(-1.5).at[:, 10].set(jnp.inf).at[:, 11].set(-jnp.inf)
    np.testing.assert_array_equal(jax.jit(fab.argsort_rows)(signed), jnp.argsort(signed, axis=-1))
    np.testing.assert_array_equal(fab._argsort_rows_numpy(np.asarray(signed, np.float64)),
                                  jnp.argsort(signed, axis=-1))
    np.testing.assert_array_equal(jax.jit(jax.vmap(fab.argsort_rows))(stacked), jnp.argsort(stacked, axis=-1))

    t = jax.random.uniform(jax.random.key(1), (6, 30))
    w = jax.random.normal(jax.random.key(2), (6, 30))
    b = jnp.sum(w * 0.5, axis=1) + 0.3 * jax.random.normal(jax.random.key(3), (6,))
    d = jax.jit(fab.projection_linf)(t, w, b)
    z = t + d
    assert bool(jnp.all((z >= -1e-6) & (z <= 1 + 1e-6)))
    np.testing.assert_allclose(jnp.sum(w * z, axis=1), b, atol=1e-4)
    monkeypatch.setattr(fab, "argsort_rows", lambda v: jnp.argsort(v, axis=-1))
    np.testing.assert_array_equal(jax.jit(fab.projection_linf)(t, w, b), d)
