"""The optimizer of a run, built from ``config.optimizer`` through optax.

``optimizer.name`` is any optax optimizer factory (``adam``, ``adamw``, ``sgd``, ``lion``, ...); it is
called with the learning-rate schedule and those of ``momentum``, ``nesterov`` and ``weight_decay``
that its signature takes. Weight decay for an optimizer without its own (``sgd``, ``adam``) is
optax's ``add_decayed_weights`` before it (L2 decay added to the gradient, as PyTorch's SGD does).
"""
from __future__ import annotations

import inspect

import ml_collections
import optax

SCHEDULES = ("constant", "cosine", "multistep")
# Options of config.optimizer handed to the factory when its signature has them.
_FACTORY_OPTIONS = ("momentum", "nesterov", "weight_decay")


def learning_rate_schedule(opt: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int = 1) -> optax.Schedule:
    """``opt.schedule`` after a linear warm-up from 0 over ``opt.warmup_steps``.

    constant; cosine: decay to 0 over the steps after the warm-up; multistep: times
    ``opt.decay_factor`` at each epoch of ``opt.decay_epochs`` (the layer-wise paper's step schedule).
    """
    warmup = opt.warmup_steps
    if warmup < 0:
        raise ValueError(f"optimizer.warmup_steps must be >= 0, got {warmup}.")
    if opt.schedule == "constant":
        schedule = optax.constant_schedule(opt.learning_rate)
    elif opt.schedule == "cosine":
        schedule = optax.cosine_decay_schedule(opt.learning_rate, max(total_steps - warmup, 1))
    elif opt.schedule == "multistep":
        boundaries = {int(epoch * steps_per_epoch) - warmup: opt.decay_factor for epoch in opt.decay_epochs}
        if any(step <= 0 for step in boundaries):
            raise ValueError(f"optimizer.decay_epochs {tuple(opt.decay_epochs)} must lie after the warm-up "
                             f"({warmup} steps, {steps_per_epoch} steps per epoch).")
        schedule = optax.piecewise_constant_schedule(opt.learning_rate, boundaries)
    else:
        raise ValueError(f"Unknown optimizer.schedule {opt.schedule!r}; use one of {SCHEDULES}.")
    if warmup:  # linear from 0, then the schedule from its start
        schedule = optax.join_schedules([optax.linear_schedule(0.0, opt.learning_rate, warmup), schedule], [warmup])
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


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int = 1
                   ) -> optax.GradientTransformation:
    """The optimizer of ``config.optimizer``: name, learning_rate, schedule, warmup_steps, momentum,
    nesterov, weight_decay (and decay_epochs / decay_factor for the multistep schedule)."""
    opt = config.optimizer
    factory = optimizer_factory(opt.name)
    accepted = _parameters(factory)
    kwargs = {key: opt[key] for key in _FACTORY_OPTIONS if key in accepted}
    if "momentum" in kwargs:
        kwargs["momentum"] = kwargs["momentum"] or None  # optax: None is no momentum (and no trace state)
    if "nesterov" in kwargs and not kwargs.get("momentum"):
        kwargs.pop("nesterov")
    tx = factory(learning_rate_schedule(opt, total_steps, steps_per_epoch), **kwargs)
    if opt.weight_decay and "weight_decay" not in accepted:
        tx = optax.chain(optax.add_decayed_weights(opt.weight_decay), tx)
    return tx
