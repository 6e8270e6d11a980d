"""The papers' task loss, shared by training (gfa_jax.gfa) and the attacks (their "mse" loss)."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def mse_onehot(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-sample MSE between logits and one-hot labels, averaged over classes: ``[B, K] -> [B]``.

    Its batch mean equals PyTorch's ``MSELoss()(logits, onehot)``, the loss both papers train with.
    """
    onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return jnp.mean(jnp.square(logits - onehot), axis=-1)
