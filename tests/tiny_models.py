"""Tiny models and data shared by the attack tests: a linear classifier with known geometry and a
small MLP trained for a few hundred steps on a synthetic, separable task."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

BOUNDS = (-1.0, 1.0)
NUM_CLASSES = 4
IMAGE_SHAPE = (6, 6, 1)


def linear_logits_fn(weights: jax.Array, bias: jax.Array):
    """logits = flatten(x) @ W + b: decision boundaries are hyperplanes with closed-form distances."""

    def logits_fn(x):
        return x.reshape(x.shape[0], -1) @ weights + bias

    return logits_fn


def random_linear_model(key, num_features: int = int(np.prod(IMAGE_SHAPE)), num_classes: int = NUM_CLASSES):
    k_w, k_b = jax.random.split(key)
    weights = jax.random.normal(k_w, (num_features, num_classes)) / np.sqrt(num_features)
    bias = 0.1 * jax.random.normal(k_b, (num_classes,))
    return weights, bias


def synthetic_data(key, n: int = 256, shape=IMAGE_SHAPE, num_classes: int = NUM_CLASSES):
    """Inputs in [-1, 1] whose class is a noisy prototype: learnable, yet attackable at eps ~ 0.1-0.3."""
    k_proto, k_label, k_noise = jax.random.split(key, 3)
    prototypes = jax.random.uniform(k_proto, (num_classes,) + shape, minval=-0.6, maxval=0.6)
    labels = jax.random.randint(k_label, (n,), 0, num_classes)
    x = prototypes[labels] + 0.25 * jax.random.normal(k_noise, (n,) + shape)
    return jnp.clip(x, *BOUNDS), labels


def init_mlp(key, sizes=(int(np.prod(IMAGE_SHAPE)), 32, NUM_CLASSES)):
    params = []
    for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        params.append((jax.random.normal(k, (n_in, n_out)) / np.sqrt(n_in), jnp.zeros(n_out)))
    return params


def mlp_apply(params, x):
    h = x.reshape(x.shape[0], -1)
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = jnp.tanh(h)
    return h


def batch_invariant_mlp_apply(params, x):
    """:func:`mlp_apply` with each layer a broadcast product and sum: a sample's logits (and their
    gradient) do not depend on the batch it comes in, bit for bit (a matmul's may, in the last bit,
    with the batch size), so the chunked and unchunked runs can be compared exactly."""
    h = x.reshape(x.shape[0], -1)
    for i, (w, b) in enumerate(params):
        h = jnp.sum(h[:, :, None] * w[None], axis=1) + b
        if i < len(params) - 1:
            h = jnp.tanh(h)
    return h


@functools.lru_cache(maxsize=None)
def trained_mlp(seed: int = 0, steps: int = 300):
    """A small tanh MLP trained with cross-entropy on :func:`synthetic_data`; returns (params, x, y)."""
    key = jax.random.key(seed)
    k_data, k_init = jax.random.split(key)
    x, y = synthetic_data(k_data, n=512)
    params = init_mlp(k_init)
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(mlp_apply(p, x), y).mean()

    @jax.jit
    def step(p, s):
        grads = jax.grad(loss)(p)
        updates, s = tx.update(grads, s)
        return optax.apply_updates(p, updates), s

    for _ in range(steps):
        params, opt_state = step(params, opt_state)
    return params, x, y
