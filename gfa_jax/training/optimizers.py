"""The optimizer of a run, built from ``config.optimizer`` through optax.

``optimizer.name`` is any optax optimizer factory (``adam``, ``adamw``, ``sgd``, ``lion``, ...); it is
called with the learning-rate schedule and those of ``momentum``, ``nesterov`` and ``weight_decay``
that its signature takes. Weight decay for an optimizer without its own (``sgd``, ``adam``) is
optax's ``add_decayed_weights`` before it (L2 decay added to the gradient, as PyTorch's SGD does).
A swept learning rate or weight decay (:mod:`gfa_jax.hyperparameters`) is the member's traced value:
the optimizer is built inside the step, and its state has the same layout whatever the value.
"""
from __future__ import annotations

import inspect

import ml_collections
import optax

from gfa_jax import hyperparameters
from gfa_jax.hyperparameters import Hyper

SCHEDULES = ("constant", "cosine", "multistep")
# Options of config.optimizer handed to the factory when its signature has them.
_FACTORY_OPTIONS = ("momentum", "nesterov", "weight_decay")


def learning_rate_schedule(opt: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int = 1,
                           peak=None) -> optax.Schedule:
    """``opt.schedule`` after a linear warm-up from 0 over ``opt.warmup_steps``.

    constant; cosine: decay to 0 over the steps after the warm-up; multistep: times
    ``opt.decay_factor`` at each epoch of ``opt.decay_epochs`` (the layer-wise paper's step schedule).
    ``peak``: the learning rate after the warm-up (may be traced); None: ``opt.learning_rate``.
    """
    peak = opt.learning_rate if peak is None else peak
    warmup = opt.warmup_steps
    if warmup < 0:
        raise ValueError(f"optimizer.warmup_steps must be >= 0, got {warmup}.")
    if opt.schedule == "constant":
        schedule = optax.constant_schedule(peak)
    elif opt.schedule == "cosine":
        schedule = optax.cosine_decay_schedule(peak, max(total_steps - warmup, 1))
    elif opt.schedule == "multistep":
        boundaries = {int(epoch * steps_per_epoch) - warmup: opt.decay_factor for epoch in opt.decay_epochs}
        if any(step <= 0 for step in boundaries):
            raise ValueError(f"optimizer.decay_epochs {tuple(opt.decay_epochs)} must lie after the warm-up "
                             f"({warmup} steps, {steps_per_epoch} steps per epoch).")
        schedule = optax.piecewise_constant_schedule(peak, boundaries)
    else:
        raise ValueError(f"Unknown optimizer.schedule {opt.schedule!r}; use one of {SCHEDULES}.")
    if warmup:  # linear from 0, then the schedule from its start
        schedule = optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), schedule], [warmup])
    return schedule


def optimizer_factory(name: str):
    """The optax function of that name that builds an optimizer from a learning rate."""
    factory = getattr(optax, name, None)
    parameters = inspect.signature(factory).parameters if callable(factory) else {}
    if "learning_rate" not in parameters:
        known = sorted(n for n in dir(optax) if not n.startswith("_") and callable(getattr(optax, n))
                       and "learning_rate" in _parameters(getattr(optax, n)))
        raise ValueError(f"Unknown optimizer.name {name!r}: not an optax optimizer. Choose one of {', '.join(known)}.")
    return factory


def _parameters(fn) -> dict:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int = 1,
                   hyper: Hyper | None = None) -> optax.GradientTransformation:
    """The optimizer of ``config.optimizer``: name, learning_rate, schedule, warmup_steps, momentum,
    nesterov, weight_decay (and decay_epochs / decay_factor for the multistep schedule).

    ``hyper``: a member's swept values (``optimizer.learning_rate``, ``optimizer.weight_decay``).
    """
    opt = config.optimizer
    factory = optimizer_factory(opt.name)
    accepted = _parameters(factory)
    weight_decay = hyperparameters.value(config, hyper, "optimizer.weight_decay")
    decays = bool(opt.weight_decay) or hyperparameters.is_swept(hyper, "optimizer.weight_decay")
    kwargs = {key: opt[key] for key in _FACTORY_OPTIONS if key in accepted}
    if "weight_decay" in kwargs:
        kwargs["weight_decay"] = weight_decay
    if "momentum" in kwargs:
        kwargs["momentum"] = kwargs["momentum"] or None  # optax: None is no momentum (and no trace state)
    if "nesterov" in kwargs and not kwargs.get("momentum"):
        kwargs.pop("nesterov")
    peak = hyperparameters.value(config, hyper, "optimizer.learning_rate")
    tx = factory(learning_rate_schedule(opt, total_steps, steps_per_epoch, peak), **kwargs)
    if decays and "weight_decay" not in accepted:
        tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
    return tx
