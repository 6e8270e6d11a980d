"""The configured defence as one objective: GFA, adversarial training, GAIE, layer-wise perturbations.

The GFA regulariser (``config.gfa``) is always part of it; with every beta 0 it is the plain task
loss (``config.task_loss``: MSE by default). Numbers an in-program sweep varies
(:mod:`gfa_jax.hyperparameters`) come from the member's ``hyper`` instead of the config.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import ml_collections

from gfa_jax import hyperparameters
from gfa_jax.defenses import adversarial_training, gaie, layerwise
from gfa_jax.defenses.gfa import gfa_loss, warmup_factor
from gfa_jax.hyperparameters import Hyper
from gfa_jax.defenses.objective import Objective, no_carry
from gfa_jax.models.state import bind


def gfa_weights(config: ml_collections.ConfigDict, num_layers: int, hyper: Hyper | None = None,
                step: jax.Array | None = None) -> tuple:
    """Each layer's GFA weight at optimizer step ``step``: ``beta_l * beta_scale * warm-up share``.

    Python floats where nothing is swept or warmed up (a 0 weight then skips its layer entirely).
    """
    value = functools.partial(hyperparameters.value, config, hyper)
    share = value("gfa.beta_scale") * warmup_factor(step, value("gfa.warmup_steps"))
    weights = []
    for i in range(num_layers):
        beta = value(f"gfa.beta.{i}")
        static_zero = not hyperparameters.is_swept(hyper, f"gfa.beta.{i}") and beta == 0.0
        weights.append(0.0 if static_zero else beta * share)
    return tuple(weights)


def make_objective(config: ml_collections.ConfigDict, model: nn.Module, hyper: Hyper | None = None,
                   step: jax.Array | None = None) -> Objective:
    """The configured strategy's objective for ``model``.

    The task loss with GFA (``config.gfa``) on the batch; with ``config.adversarial.enabled`` on a
    mix of clean and adversarial inputs; minus ``config.gaie.weight`` times the GAIE alignment; and
    with ``config.layerwise.enabled`` under layer-wise output perturbations.

    Args:
      hyper: a member's swept values (:mod:`gfa_jax.hyperparameters`), traced inside the train step;
        None or {}: the config's values.
      step: the optimizer step the objective is for (the GFA warm-up); None: after any warm-up.
    """
    value = functools.partial(hyperparameters.value, config, hyper)
    gfa_term = functools.partial(
        gfa_loss, layer_names=model.layer_names, alpha=value("gfa.alpha"),
        beta=gfa_weights(config, len(model.layer_names), hyper, step), task_loss=config.task_loss,
    )
    gaie_weight = value("gaie.weight")
    use_gaie = bool(config.gaie.weight) or hyperparameters.is_swept(hyper, "gaie.weight")

    def loss(params, model_state, x, y, key, carry):
        training_model = bind(model, model_state, train=True)
        if config.adversarial.enabled:
            # Adversarials of the model in inference mode by default (Madry et al.'s and AutoAttack
            # users' practice): batch norm then does not see the attack's own batches.
            attack_model = training_model if config.adversarial.model_mode == "train" else bind(
                model, model_state, train=False)
            settings = {k: v for k, v in config.adversarial.items() if k not in ("enabled", "model_mode")}
            settings["eps"] = value("adversarial.eps")
            x, y = adversarial_training.adversarial_inputs(params, x, y, key, model=attack_model,
                                                           loss=config.task_loss, **settings)
        total, metrics = gfa_term(params, x, y, model=training_model)
        if use_gaie:
            alignment = gaie.gaie_alignment(params, x, y, model=training_model).mean()
            total = total - gaie_weight * alignment
            metrics = {**metrics, "gaie": alignment}
        return total, (metrics, carry, training_model.updated_state(params, x))

    objective = Objective(loss, no_carry)
    if config.layerwise.enabled:
        objective = layerwise.make_layerwise_objective(config, model, objective, hyper)
    return objective
