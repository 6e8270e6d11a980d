"""Closed forms and sanity checks of the gradient attacks (FGSM family, BIM, PGD, PGD-L2, ...)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_models import (
    BOUNDS,
    NUM_CLASSES,
    linear_logits_fn,
    mlp_apply,
    random_linear_model,
    synthetic_data,
    trained_mlp,
)

from gfa_jax import attacks
from gfa_jax.attacks.base import per_sample_norm
from gfa_jax.attacks.gradient._resample import shrink_and_shift
from gfa_jax.attacks.gradient.difgsm import input_diversity

KEY = jax.random.key(0)


@functools.lru_cache(maxsize=None)
def linear_problem(n: int = 32):
    weights, bias = random_linear_model(jax.random.key(1))
    x, y = synthetic_data(jax.random.key(2), n=n)
    return weights, bias, x, y


@functools.lru_cache(maxsize=None)
def mlp_problem(n: int = 128):
    params, x, y = trained_mlp()
    return (lambda z: mlp_apply(params, z)), x[:n], y[:n]


def jitted_fgsm(logits_fn, eps):
    return jax.jit(lambda x_, y_: attacks.fgsm(logits_fn, x_, y_, KEY, bounds=BOUNDS, eps=eps))


def accuracy(logits_fn, x, y) -> float:
    return float(jnp.mean(jnp.argmax(logits_fn(x), axis=-1) == y))


def analytic_gradient(weights, bias, x, y, loss: str):
    """d loss / dx of the linear model ``z = x W + b``: CE -> W (softmax(z) - e_y); margin -> W_j* - W_y."""
    flat = x.reshape(x.shape[0], -1)
    logits = flat @ weights + bias
    onehot = jax.nn.one_hot(y, NUM_CLASSES)
    if loss == "ce":
        grad = (jax.nn.softmax(logits) - onehot) @ weights.T
    else:
        runner_up = jnp.argmax(jnp.where(onehot > 0, -jnp.inf, logits), axis=-1)
        grad = weights.T[runner_up] - weights.T[y]
    return grad.reshape(x.shape)


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_fgsm_is_the_analytic_sign_step_on_a_linear_model(loss, targeted):
    weights, bias, x, y = linear_problem()
    eps = 0.1
    run = jax.jit(lambda x_, y_: attacks.fgsm(linear_logits_fn(weights, bias), x_, y_, KEY, bounds=BOUNDS, eps=eps, loss=loss, targeted=targeted))
    x_adv = run(x, y)
    direction = -1.0 if targeted else 1.0
    expected = jnp.clip(x + eps * direction * jnp.sign(analytic_gradient(weights, bias, x, y, loss)), *BOUNDS)
    np.testing.assert_array_equal(np.asarray(x_adv), np.asarray(expected))


@pytest.mark.parametrize("name", ["pgd", "bim"])
def test_one_step_with_alpha_beyond_eps_is_fgsm(name):
    logits_fn, x, y = mlp_problem()
    eps = 0.1
    extra = {"random_start": False} if name == "pgd" else {}
    one_step = jax.jit(lambda x_, y_: getattr(attacks, name)(logits_fn, x_, y_, KEY, bounds=BOUNDS, eps=eps, alpha=3 * eps, steps=1, **extra))
    np.testing.assert_array_equal(np.asarray(one_step(x, y)), np.asarray(jitted_fgsm(logits_fn, eps)(x, y)))


@pytest.mark.parametrize("random_start", [False, True], ids=["from_x", "random_start"])
def test_pgd_l2_uses_the_whole_ball_away_from_the_box(random_start):
    weights, bias, _, y = linear_problem()
    # |x| <= 0.2 and ||delta||_2 <= 0.5 keep every pixel inside [-1, 1]: the box never clips.
    x = jax.random.uniform(jax.random.key(3), (y.shape[0], 6, 6, 1), minval=-0.2, maxval=0.2)
    eps = 0.5
    run = jax.jit(lambda x_, y_: attacks.pgd_l2(
        linear_logits_fn(weights, bias), x_, y_, KEY, bounds=BOUNDS, eps=eps, alpha=eps / 2, steps=5, random_start=random_start
    ))
    norms = per_sample_norm(run(x, y) - x, 2)
    np.testing.assert_allclose(np.asarray(norms), eps, rtol=1e-4)


def test_pgd_is_at_least_as_strong_as_fgsm():
    logits_fn, x, y = mlp_problem()
    eps = 0.2
    fgsm_accuracy = accuracy(logits_fn, jitted_fgsm(logits_fn, eps)(x, y), y)
    x_pgd = jax.jit(lambda x_, y_: attacks.pgd(logits_fn, x_, y_, KEY, bounds=BOUNDS, eps=eps, alpha=eps / 4, steps=10))(x, y)
    assert accuracy(logits_fn, x_pgd, y) <= fgsm_accuracy + 1 / len(y)
    assert fgsm_accuracy < accuracy(logits_fn, x, y)


def test_pgd_accuracy_decreases_with_eps():
    logits_fn, x, y = mlp_problem()
    eps_grid = jnp.array([0.0, 0.05, 0.1, 0.15, 0.2, 0.3])
    x_adv = jax.jit(jax.vmap(lambda e: attacks.pgd(logits_fn, x, y, KEY, bounds=BOUNDS, eps=e, alpha=e / 4, steps=10)))(eps_grid)
    accuracies = np.array([accuracy(logits_fn, x_i, y) for x_i in x_adv])
    assert accuracies[0] == accuracy(logits_fn, x, y)
    assert np.all(np.diff(accuracies) <= 1 / len(y)), accuracies
    assert accuracies[-1] < accuracies[0] - 0.3, accuracies


def test_targeted_pgd_reaches_its_targets_at_large_eps():
    logits_fn, x, y = mlp_problem()
    targets = (y + 1) % NUM_CLASSES
    x_adv = jax.jit(lambda x_, t_: attacks.pgd(logits_fn, x_, t_, KEY, bounds=BOUNDS, eps=1.0, alpha=0.1, steps=20, targeted=True))(
        x, targets
    )
    hit_rate = float(jnp.mean(jnp.argmax(logits_fn(x_adv), axis=-1) == targets))
    assert hit_rate >= 0.9, hit_rate


def _constant_key_logits(logits_fn):
    return lambda x, key: logits_fn(x)


# Each variant, with its extra ingredient switched off, must be BIM exactly.
REDUCES_TO_BIM = {
    "mifgsm_without_momentum": lambda f: functools.partial(attacks.mifgsm, f, bounds=BOUNDS, decay=0.0),
    "nifgsm_without_momentum": lambda f: functools.partial(attacks.nifgsm, f, bounds=BOUNDS, decay=0.0),
    "difgsm_without_diversity": lambda f: functools.partial(attacks.difgsm, f, bounds=BOUNDS, diversity_prob=0.0),
    "eotpgd_on_a_deterministic_model": lambda f: functools.partial(
        attacks.eotpgd, _constant_key_logits(f), stochastic=True, random_start=False, bounds=BOUNDS
    ),
}


@pytest.mark.parametrize("variant", sorted(REDUCES_TO_BIM))
def test_variants_reduce_to_bim(variant):
    logits_fn, x, y = mlp_problem(32)
    kwargs = dict(eps=0.1, alpha=0.03, steps=4)
    expected = jax.jit(lambda x_, y_: attacks.bim(logits_fn, x_, y_, KEY, bounds=BOUNDS, **kwargs))(x, y)
    attack = REDUCES_TO_BIM[variant](logits_fn)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda x_, y_: attack(x_, y_, KEY, **kwargs))(x, y)), np.asarray(expected))


@pytest.mark.parametrize("kernel_name", ["project", "gaussian"])
def test_patchwise_depthwise_conv_is_the_grouped_convolution(kernel_name):
    """The shifted-sum depthwise convolution equals lax's grouped one (PI-FGSM's two kernels)."""
    from gfa_jax.attacks.gradient._iterative import depthwise_conv, project_kernel
    from gfa_jax.attacks.gradient.pifgsmpp import gaussian_kernel

    kernel = project_kernel(3) if kernel_name == "project" else gaussian_kernel(3, 3.0)
    x = jax.random.normal(jax.random.key(0), (2, 7, 5, 3))
    weights = jnp.broadcast_to(jnp.asarray(kernel)[:, :, None, None], (3, 3, 1, 3))
    expected = jax.lax.conv_general_dilated(x, weights, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            feature_group_count=3)
    np.testing.assert_allclose(np.asarray(depthwise_conv(x, kernel)), np.asarray(expected), atol=1e-6)


def test_input_diversity_shrinks_and_pads_each_sample_independently():
    x = jnp.ones((64, 6, 6, 1))
    diversity = jax.jit(lambda p: input_diversity(KEY, x, 0.5, p))
    np.testing.assert_array_equal(np.asarray(diversity(0.0)), np.asarray(x))
    diverse = np.asarray(diversity(1.0))
    assert diverse.shape == x.shape
    # A 6x6 image shrunk to s in {3, 4, 5} covers s*s pixels (bilinear of a constant image is 1).
    covered = (diverse > 0.5).sum(axis=(1, 2, 3))
    assert set(covered.tolist()) <= {9, 16, 25} and len(set(covered.tolist())) > 1


@pytest.mark.parametrize("shape, rate", [((16, 28, 28, 1), 0.9), ((16, 32, 32, 3), 0.9), ((16, 6, 9, 2), 0.5)])
def test_shrink_and_shift_equals_scale_and_translate_in_value_and_gradient(shape, rate):
    """The two-tap gathers (and their hand-written transpose) against jax.image's dense resampling."""
    k_x, k_size, k_offset, k_cotangent = jax.random.split(jax.random.key(3), 4)
    x = jax.random.uniform(k_x, shape, minval=-1.0, maxval=1.0)
    full = jnp.array(shape[1:3], jnp.float32)
    low = jnp.floor(rate * full)
    size = low + jnp.floor(jax.random.uniform(k_size, (shape[0], 2)) * (full - low + 1))  # includes the identity
    offset = jnp.floor(jax.random.uniform(k_offset, (shape[0], 2)) * (full - size + 1))
    cotangent = jax.random.normal(k_cotangent, shape)

    def reference(images):
        one = lambda image, s, o: jax.image.scale_and_translate(
            image, image.shape, (0, 1), s / full, o, "linear", antialias=False)
        return jax.vmap(one)(images, size, offset)

    expected, expected_vjp = jax.vjp(reference, x)
    actual, actual_vjp = jax.vjp(lambda images: shrink_and_shift(images, size, offset), x)
    assert bool(jnp.any(size < full)) and bool(jnp.any(size == full))
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), atol=1e-4)
    np.testing.assert_allclose(np.asarray(actual_vjp(cotangent)[0]), np.asarray(expected_vjp(cotangent)[0]), atol=1e-4)
    identity = np.asarray(jnp.all(size == full, axis=1) & jnp.all(offset == 0, axis=1))
    np.testing.assert_array_equal(np.asarray(actual)[identity], np.asarray(x)[identity])
