"""The GFA term's stable import path, ``gfa_jax.gfa.gfa_loss``; it lives in :mod:`gfa_jax.defenses.gfa`."""
from gfa_jax.defenses.gfa import (  # noqa: F401
    cosine_similarity,
    gfa_loss,
    layer_gfa,
    layer_inputs_and_gradients,
    mse_onehot,
)

__all__ = ["cosine_similarity", "gfa_loss", "layer_gfa", "layer_inputs_and_gradients", "mse_onehot"]
