"""The configured defence as one objective: GFA, adversarial training, GAIE, layer-wise perturbations.

The GFA regulariser (``config.gfa``) is always part of it; with every beta 0 it is the plain task
loss (``config.task_loss``: MSE by default).
"""
from __future__ import annotations

import functools

import flax.linen as nn
import ml_collections

from gfa_jax.defenses import adversarial_training, gaie, layerwise
from gfa_jax.defenses.gfa import gfa_loss
from gfa_jax.defenses.objective import Objective, no_carry
from gfa_jax.models.state import bind


def make_objective(config: ml_collections.ConfigDict, model: nn.Module) -> Objective:
    """The configured strategy's objective for ``model``.

    The task loss with GFA (``config.gfa``) on the batch; with ``config.adversarial.enabled`` on a
    mix of clean and adversarial inputs; minus ``config.gaie.weight`` times the GAIE alignment; and
    with ``config.layerwise.enabled`` under layer-wise output perturbations.
    """
    gfa_term = functools.partial(
        gfa_loss, layer_names=model.layer_names, alpha=config.gfa.alpha,
        beta=tuple(float(b) for b in config.gfa.beta), task_loss=config.task_loss,
    )

    def loss(params, model_state, x, y, key, carry):
        training_model = bind(model, model_state, train=True)
        if config.adversarial.enabled:
            # Adversarials of the model in inference mode by default (Madry et al.'s and AutoAttack
            # users' practice): batch norm then does not see the attack's own batches.
            attack_model = training_model if config.adversarial.model_mode == "train" else bind(
                model, model_state, train=False)
            settings = {k: v for k, v in config.adversarial.items() if k not in ("enabled", "model_mode")}
            x, y = adversarial_training.adversarial_inputs(params, x, y, key, model=attack_model,
                                                           loss=config.task_loss, **settings)
        value, metrics = gfa_term(params, x, y, model=training_model)
        if config.gaie.weight:
            alignment = gaie.gaie_alignment(params, x, y, model=training_model).mean()
            value = value - config.gaie.weight * alignment
            metrics = {**metrics, "gaie": alignment}
        return value, (metrics, carry, training_model.updated_state(params, x))

    objective = Objective(loss, no_carry)
    if config.layerwise.enabled:
        objective = layerwise.make_layerwise_objective(config, model, objective)
    return objective
