"""The train step: one member's pure step, and every member's as one jitted program.

``train_step`` (one member, pure) -> ``make_multiseed_step`` (vmapped, jitted, sharded); the data
order and randomness of an epoch are functions of (seed, epoch) alone (``epoch_keys``,
``epoch_orders``). A member is a seed under a setting of the in-program sweep
(:mod:`gfa_jax.hyperparameters`): its objective and optimizer are built inside the step from its
swept values (``hyper``, traced), so one program serves every setting.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import ml_collections
import optax

from gfa_jax import data
from gfa_jax.defenses.compose import make_objective
from gfa_jax.defenses.objective import Objective
from gfa_jax.hyperparameters import Hyper
from gfa_jax.training.optimizers import make_optimizer
from gfa_jax.training import multiseed
from gfa_jax.training.train_state import TrainState, create_train_state

Array = jax.Array

_AUGMENTATION_STREAM = 1  # folded into the step key: the augmentation draws from its own stream


class Recipe(NamedTuple):
    """A member's objective and optimizer as functions of its swept values (and of the step, for
    warm-ups); outside a sweep ``hyper`` is ``{}``."""

    objective: Callable[[Hyper, Array | None], Objective]  # (hyper, step) -> the step's objective
    optimizer: Callable[[Hyper], optax.GradientTransformation]


def make_recipe(config: ml_collections.ConfigDict, model: nn.Module, total_steps: int,
                steps_per_epoch: int) -> Recipe:
    """The configured objective (:func:`make_objective`) and optimizer (:func:`make_optimizer`)."""
    return Recipe(
        objective=lambda hyper, step: make_objective(config, model, hyper, step),
        optimizer=lambda hyper: make_optimizer(config, total_steps, steps_per_epoch, hyper),
    )


def init_members(recipe: Recipe, model: nn.Module, sample_x: Array, init_keys: Array, hyper) -> TrainState:
    """Every member's first train state, stacked: its seed's initialisation, its setting's optimizer
    and objective carry (``init_keys`` ``[M]``, ``hyper`` a dict of ``[M]`` swept values)."""
    return jax.jit(jax.vmap(lambda key, member_hyper: create_train_state(
        key, model, recipe.optimizer(member_hyper), sample_x, recipe.objective(member_hyper, None))))(init_keys, hyper)


def fixed_recipe(objective: Objective, tx: optax.GradientTransformation) -> Recipe:
    """A recipe of one objective and optimizer (no swept values)."""
    return Recipe(objective=lambda hyper, step: objective, optimizer=lambda hyper: tx)


def train_step(
    state: TrainState,
    hyper: Hyper,
    images: Array,
    labels: Array,
    order: Array,
    epoch_key: Array,
    step_in_epoch: Array,
    *,
    recipe: Recipe,
    batch_size: int,
    augment: Callable[[Array, Array], Array] | None = None,
) -> tuple[TrainState, dict[str, Array]]:
    """One optimizer step of one member on batch ``step_in_epoch`` of its epoch order.

    Args:
      hyper: the member's swept values (``{}`` outside an in-program sweep).
      images: the whole training set, uint8 ``[N, H, W, C]`` (on device, shared by the members).
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
    objective, tx = recipe.objective(hyper, state.step), recipe.optimizer(hyper)
    (loss, (aux, carry, model_state)), grads = jax.value_and_grad(objective.loss, has_aux=True)(
        state.params, state.model_state, x, y, key, state.carry)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, carry=carry,
                              model_state=model_state)
    return new_state, {"loss": loss, **aux}


def make_multiseed_step(recipe: Recipe, batch_size: int, seed_chunk: int | None = None,
                        augment: Callable[[Array, Array], Array] | None = None):
    """All members' ``train_step`` as one jitted program:
    ``(states, hyper, images, labels, orders, keys, i) -> (states, metrics)``, every argument but
    the data and ``i`` stacked on the member axis.

    ``seed_chunk``: see :func:`multiseed.map_seeds` (None: one vmap over all members).
    """
    step = functools.partial(train_step, recipe=recipe, batch_size=batch_size, augment=augment)

    def all_seeds(states, hyper, images, labels, orders, keys, step_in_epoch):
        def one_seed(state, member_hyper, order, key):
            return step(state, member_hyper, images, labels, order, key, step_in_epoch)

        return multiseed.map_seeds(one_seed, (states, hyper, orders, keys), seed_chunk)

    return jax.jit(all_seeds, donate_argnums=(0,))


def epoch_keys(keys: Array, epoch: int) -> Array:
    """Each seed's key for ``epoch`` ``[S]``: a function of (seed, epoch) alone, so a resumed run
    sees the same data order and randomness as an uninterrupted one."""
    return jax.vmap(lambda k: jax.random.fold_in(k, epoch))(keys)


def epoch_orders(data_keys: Array, epoch: int, num_examples: int) -> Array:
    """Each seed's own permutation of the training set for ``epoch`` ``[S, N]``."""
    return jax.vmap(lambda k: jax.random.permutation(k, num_examples))(epoch_keys(data_keys, epoch))
