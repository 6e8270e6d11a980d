"""Per-sample task losses ``(logits [B, K], labels [B]) -> [B]``, shared by training and the attacks.

DeepDefense trains with MSE on one-hot labels (``mse``); the layer-wise adversarial training paper
names cross-entropy as the loss its attacks ascend, and its configs train with it (``ce``): a
perturbed output layer moves the logits by up to ``eps * ||W_j||_1`` per class, which MSE's unbounded
gradient turned into divergence at the paper's SGD lr 0.1 within one epoch (4FC, either reading of
the perturbation), while the softmax keeps cross-entropy's gradient bounded.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def mse_onehot(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-sample MSE between logits and one-hot labels, averaged over classes: ``[B, K] -> [B]``.

    Its batch mean equals PyTorch's ``MSELoss()(logits, onehot)``, the loss DeepDefense trains with.
    """
    onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return jnp.mean(jnp.square(logits - onehot), axis=-1)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-sample softmax cross-entropy: ``[B, K] -> [B]``."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]


TASK_LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {"mse": mse_onehot, "ce": cross_entropy}


def get_task_loss(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The per-sample task loss called ``name`` (``config.task_loss``: 'mse' or 'ce')."""
    try:
        return TASK_LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown task loss {name!r}; choose one of {sorted(TASK_LOSSES)}.") from None
