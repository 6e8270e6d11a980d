"""Models with non-trainable state (batch-norm statistics) behind the interface of stateless ones.

A model's variables split into ``params`` (trained by gradient) and its *state*: every other
collection ``init`` makes (``batch_stats`` for batch norm; empty for the papers' CNN and MLP). The
defences, the evaluation and the attacks call ``model.apply({"params": params}, x, ...)``;
:class:`StatefulModel` binds the state and the mode to a model so those calls stay as they are:

- ``train=True``: batch norm normalises by the batch's statistics (training forward passes, GFA's
  nested gradients, adversarials generated in train mode); the running averages are not changed by
  these calls: :meth:`StatefulModel.updated_state` computes them once per step.
- ``train=False``: inference mode, normalising by the running averages (evaluation, attacks).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax

from gfa_jax.models.layers import LAYER_INPUT_GRADS, LAYER_INPUTS

# Collections that are not model state: the parameters, GFA's captured layer inputs and their gradients.
TRANSIENT_COLLECTIONS = ("params", LAYER_INPUTS, LAYER_INPUT_GRADS)


def split_variables(variables) -> tuple[Any, dict]:
    """``(params, state)`` of the variables ``model.init`` returned."""
    state = {name: value for name, value in variables.items() if name not in TRANSIENT_COLLECTIONS}
    return variables["params"], state


@dataclasses.dataclass(frozen=True)
class StatefulModel:
    """``module`` with its state bound, applied in train or inference mode (see the module docstring)."""

    module: nn.Module
    state: Any
    train: bool

    @property
    def layer_names(self):
        return self.module.layer_names

    def apply(self, variables, *args, mutable=False, **kwargs):
        if not self.state:  # stateless models take no `train` argument
            return self.module.apply(variables, *args, mutable=mutable, **kwargs)
        requested = [] if mutable is False else list(mutable)
        mutated = requested + (list(self.state) if self.train else [])
        result = self.module.apply({**variables, **self.state}, *args, train=self.train,
                                   mutable=mutated or False, **kwargs)
        if not mutated:
            return result
        output, changed = result
        if mutable is False:
            return output
        return output, {name: value for name, value in changed.items() if name in requested}

    def updated_state(self, params, x):
        """The state after one training forward pass on ``x`` (batch norm's running averages);
        parameters are not differentiated through it."""
        if not self.state:
            return self.state
        _, changed = self.module.apply({"params": jax.lax.stop_gradient(params), **self.state}, x, train=True,
                                       mutable=list(self.state))
        return {name: changed[name] for name in self.state}


def bind(module: nn.Module, state, *, train: bool) -> StatefulModel:
    return StatefulModel(module, state if state else {}, train)


def inference_logits_fn(module: nn.Module, params, state):
    """``x -> logits`` of a trained model in inference mode: what attacks should see."""
    model = bind(module, state, train=False)
    return lambda x: model.apply({"params": params}, x)


def inference_apply(module: nn.Module, variables, x):
    """``module`` in inference mode on ``x``, ``variables`` holding ``params`` and the state: a pure
    function of arrays, for callers that pass the model as ``jax.tree_util.Partial(apply, variables)``."""
    state = {name: value for name, value in variables.items() if name != "params"}
    return bind(module, state, train=False).apply({"params": variables["params"]}, x)
