"""The train state of one seed (what a resumed run needs, checkpointed as a whole) and its creation."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from gfa_jax.defenses.objective import Objective
from gfa_jax.models import get_model
from gfa_jax.models.state import split_variables

Array = jax.Array


class TrainState(struct.PyTreeNode):
    """What a seed's training needs to continue: checkpointed as a whole.

    ``model_state`` is the model's non-trainable state (batch-norm statistics; ``{}`` for the papers'
    models, see :mod:`gfa_jax.models.state`); ``carry`` is what the objective hands from one step to
    the next (see :mod:`gfa_jax.defenses.objective`).
    """

    step: Array
    params: Any
    opt_state: Any
    carry: Any
    model_state: Any = struct.field(default_factory=dict)


def make_model(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    return get_model(config.model.name, num_classes=num_classes)


def create_train_state(key: Array, model: nn.Module, tx: optax.GradientTransformation, sample_x: Array,
                       objective: Objective | None = None) -> TrainState:
    params, model_state = split_variables(model.init(key, sample_x))
    carry = objective.init_carry(params, model_state, sample_x) if objective is not None else {}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), carry=carry,
                      model_state=model_state)
