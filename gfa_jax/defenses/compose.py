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


def make_objective(config: ml_collections.ConfigDict, model: nn.Module) -> Objective:
    """The configured strategy's objective for ``model``.

    The task loss with GFA (``config.gfa``) on the batch; with ``config.adversarial.enabled`` on a
    mix of clean and adversarial inputs; minus ``config.gaie.weight`` times the GAIE alignment; and
    with ``config.layerwise.enabled`` under layer-wise output perturbations.
    """
    gfa_term = functools.partial(
        gfa_loss, model=model, layer_names=model.layer_names, alpha=config.gfa.alpha,
        beta=tuple(float(b) for b in config.gfa.beta), task_loss=config.task_loss,
    )

    def loss(params, x, y, key, carry):
        if config.adversarial.enabled:
            settings = {k: v for k, v in config.adversarial.items() if k != "enabled"}
            x, y = adversarial_training.adversarial_inputs(params, x, y, key, model=model,
                                                           loss=config.task_loss, **settings)
        value, metrics = gfa_term(params, x, y)
        if config.gaie.weight:
            alignment = gaie.gaie_alignment(params, x, y, model=model).mean()
            value = value - config.gaie.weight * alignment
            metrics = {**metrics, "gaie": alignment}
        return value, (metrics, carry)

    objective = Objective(loss, no_carry)
    if config.layerwise.enabled:
        objective = layerwise.make_layerwise_objective(config, model, objective)
    return objective
