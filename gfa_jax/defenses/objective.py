"""The type every defence's training objective has: what a train step minimises.

An objective is ``loss(params, model_state, x, y, key, carry) -> (loss, (metrics, carry, model_state))``:

- ``model_state``: the model's non-trainable state (batch-norm statistics, ``{}`` for stateless
  models); the objective returns it as updated by this step's training forward pass;
- ``key``: a PRNG key of this seed and step (random starts of adversarial training, random eps of
  layer-wise adversarial training, ...);
- ``carry``: state a strategy hands from one step to the next, kept in the train state and
  checkpointed with it (layer-wise adversarial training: the previous batch's gradients); ``{}``
  for strategies that need none.

Defences are interchangeable objectives: :func:`gfa_jax.defenses.compose.make_objective` builds the
configured one from the GFA term, adversarial training, GAIE and layer-wise perturbations.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

Array = jax.Array


class Objective(NamedTuple):
    loss: Callable[..., tuple[Array, tuple[dict[str, Array], Any, Any]]]
    init_carry: Callable[[Any, Any, Array], Any]  # (params, model_state, sample_x) -> the first step's carry


def no_carry(params, model_state, sample_x) -> dict:
    del params, model_state, sample_x
    return {}
