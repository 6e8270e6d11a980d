"""The train step: one seed's pure step, and every seed's as one jitted program.

``train_step`` (one seed, pure) -> ``make_multiseed_step`` (vmapped, jitted, sharded); the data order
and randomness of an epoch are functions of (seed, epoch) alone (``epoch_keys``, ``epoch_orders``).
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import optax

from gfa_jax import data
from gfa_jax.defenses.objective import Objective
from gfa_jax.training import multiseed
from gfa_jax.training.train_state import TrainState

Array = jax.Array

_AUGMENTATION_STREAM = 1  # folded into the step key: the augmentation draws from its own stream


def train_step(
    state: TrainState,
    images: Array,
    labels: Array,
    order: Array,
    epoch_key: Array,
    step_in_epoch: Array,
    *,
    objective: Objective,
    tx: optax.GradientTransformation,
    batch_size: int,
    augment: Callable[[Array, Array], Array] | None = None,
) -> tuple[TrainState, dict[str, Array]]:
    """One optimizer step of one seed on batch ``step_in_epoch`` of its epoch order.

    Args:
      images: the whole training set, uint8 ``[N, H, W, C]`` (on device, shared by the seeds).
      labels: int ``[N]``.
      order: this seed's permutation of ``range(N)`` for the epoch.
      epoch_key: this seed's key for the epoch; the step's key is folded from it.
      augment: ``augment(key, uint8 batch) -> uint8 batch`` (:mod:`gfa_jax.augmentation`), or None.
    """
    index = jax.lax.dynamic_slice_in_dim(order, step_in_epoch * batch_size, batch_size)
    batch = images[index]
    y = labels[index]
    key = jax.random.fold_in(epoch_key, step_in_epoch)
    if augment is not None:  # its own key stream: the objective's key is the same with or without
        batch = augment(jax.random.fold_in(key, _AUGMENTATION_STREAM), batch)
    x = data.to_model_range(batch)
    (loss, (aux, carry, model_state)), grads = jax.value_and_grad(objective.loss, has_aux=True)(
        state.params, state.model_state, x, y, key, state.carry)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, carry=carry,
                              model_state=model_state)
    return new_state, {"loss": loss, **aux}


def make_multiseed_step(objective: Objective, tx: optax.GradientTransformation, batch_size: int,
                        seed_chunk: int | None = None, augment: Callable[[Array, Array], Array] | None = None):
    """All seeds' ``train_step`` as one jitted program: ``(states, images, labels, orders, keys, i)``.

    ``seed_chunk``: see :func:`multiseed.map_seeds` (None: one vmap over all seeds).
    """
    step = functools.partial(train_step, objective=objective, tx=tx, batch_size=batch_size, augment=augment)

    def all_seeds(states, images, labels, orders, keys, step_in_epoch):
        def one_seed(state, order, key):
            return step(state, images, labels, order, key, step_in_epoch)

        return multiseed.map_seeds(one_seed, (states, orders, keys), seed_chunk)

    return jax.jit(all_seeds, donate_argnums=(0,))


def epoch_keys(keys: Array, epoch: int) -> Array:
    """Each seed's key for ``epoch`` ``[S]``: a function of (seed, epoch) alone, so a resumed run
    sees the same data order and randomness as an uninterrupted one."""
    return jax.vmap(lambda k: jax.random.fold_in(k, epoch))(keys)


def epoch_orders(data_keys: Array, epoch: int, num_examples: int) -> Array:
    """Each seed's own permutation of the training set for ``epoch`` ``[S, N]``."""
    return jax.vmap(lambda k: jax.random.permutation(k, num_examples))(epoch_keys(data_keys, epoch))
