"""What a train step minimises, composed from the config.

An objective is ``loss(params, x, y, key, carry) -> (loss, (metrics, carry))``:

- ``key``: a PRNG key of this seed and step (random starts of adversarial training, random eps of
  layer-wise adversarial training, ...);
- ``carry``: state a strategy hands from one step to the next, kept in the train state and
  checkpointed with it (layer-wise adversarial training: the previous batch's gradients); ``{}``
  for strategies that need none.

The GFA regulariser (``config.gfa``) is always part of it; with every beta 0 it is plain MSE.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import ml_collections

from gfa_jax.gfa import gfa_loss

Array = jax.Array


class Objective(NamedTuple):
    loss: Callable[..., tuple[Array, tuple[dict[str, Array], Any]]]
    init_carry: Callable[[Any, Array], Any]  # (params, sample_x) -> the first step's carry


def no_carry(params, sample_x) -> dict:
    del params, sample_x
    return {}


def make_objective(config: ml_collections.ConfigDict, model: nn.Module) -> Objective:
    """The configured strategy's objective for ``model`` (the standard / FIRST / DEEP family)."""
    gfa_term = functools.partial(
        gfa_loss, model=model, layer_names=model.layer_names, alpha=config.gfa.alpha,
        beta=tuple(float(b) for b in config.gfa.beta),
    )

    def loss(params, x, y, key, carry):
        del key
        value, metrics = gfa_term(params, x, y)
        return value, (metrics, carry)

    return Objective(loss, no_carry)
