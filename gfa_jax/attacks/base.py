"""What every attack shares: the calling convention, losses, projections and the registry.

Calling convention (every attack in this package follows it)::

    x_adv = attack(logits_fn, x, y, key, *, eps=..., bounds=(lo, hi), loss="ce", ...)

- ``logits_fn``: batched function ``x -> logits`` (e.g. ``lambda x: model.apply({'params': p}, x)``).
  Closing over traced parameters is fine, so ``jax.vmap`` over stacked seeds works.
- ``x``: inputs ``[B, ...]`` inside ``bounds``; ``y``: integer labels ``[B]`` (the true labels, or the
  target labels when ``targeted=True``).
- ``key``: a ``jax.random`` key (used or not, always accepted so the registry can call every attack
  the same way).
- ``bounds``: the box of valid inputs of *your* model, required (a call without it is a
  ``TypeError`` naming it): images in [0, 1] need ``bounds=(0.0, 1.0)``, gfa-jax's own models take
  [-1, 1] (``gfa_jax.data.MODEL_INPUT_BOUNDS``). Attacks never leave it.
- ``eps`` and step sizes are traceable (``jax.vmap`` over an array of eps works); step counts,
  restarts and loss names are static Python values.
- Bounded attacks return ``x_adv`` with ``x_adv`` in ``bounds`` and in the eps ball around ``x``.
  Minimum-norm attacks return a :class:`MinNormResult`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from gfa_jax.losses import cross_entropy, mse_onehot

Array = jax.Array
LogitsFn = Callable[[Array], Array]
Bounds = tuple[float, float]


class MinNormResult(NamedTuple):
    """Result of a minimum-norm attack.

    Attributes:
      x_adv: the adversarial inputs ``[B, ...]`` (equal to ``x`` where the attack failed).
      success: bool ``[B]``, True where ``x_adv`` is misclassified (or classified as the target).
      norm: the perturbation's norm in the attack's own metric ``[B]`` (``inf`` where it failed).
    """

    x_adv: Array
    success: Array
    norm: Array


# ----------------------------------------------------------------------------- losses
# Per-sample losses ``(logits [B, K], y [B]) -> [B]``; attacks ascend their sum.


def margin(logits: Array, y: Array) -> Array:
    """C&W margin: max_{j != y} z_j - z_y (positive when misclassified)."""
    true_logit = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
    others = jnp.where(jax.nn.one_hot(y, logits.shape[-1], dtype=bool), -jnp.inf, logits)
    return jnp.max(others, axis=-1) - true_logit


def dlr(logits: Array, y: Array) -> Array:
    """Difference of Logits Ratio (Croce & Hein 2020, eq. 5), untargeted, ascended by attacks.

    DLR = -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3 + 1e-12), pi the descending order of z.
    """
    sorted_logits = jnp.sort(logits, axis=-1)
    scale = sorted_logits[:, -1] - sorted_logits[:, -3] + 1e-12
    return margin(logits, y) / scale


def dlr_targeted(logits: Array, y: Array, y_target: Array) -> Array:
    """Targeted DLR (Croce & Hein 2020, eq. 6): -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)."""
    sorted_logits = jnp.sort(logits, axis=-1)
    z_y = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
    z_t = jnp.take_along_axis(logits, y_target[:, None], axis=-1)[:, 0]
    scale = sorted_logits[:, -1] - 0.5 * (sorted_logits[:, -3] + sorted_logits[:, -4]) + 1e-12
    return -(z_y - z_t) / scale


LOSSES: dict[str, Callable[[Array, Array], Array]] = {
    "ce": cross_entropy,
    "mse": mse_onehot,
    "margin": margin,
    "dlr": dlr,
}


def get_loss(name: str) -> Callable[[Array, Array], Array]:
    """Look up a per-sample attack loss by name ('ce', 'mse', 'margin', 'dlr')."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown attack loss {name!r}; choose one of {sorted(LOSSES)}.") from None


def attack_objective(logits_fn: LogitsFn, loss: str, targeted: bool) -> Callable[[Array, Array], Array]:
    """``(x, y) -> [B]`` loss that the attack *ascends* (negated for targeted attacks)."""
    loss_fn = get_loss(loss)
    sign = -1.0 if targeted else 1.0

    def objective(x: Array, y: Array) -> Array:
        return sign * loss_fn(logits_fn(x), y)

    return objective


def input_gradient(objective: Callable[[Array, Array], Array], x: Array, y: Array) -> tuple[Array, Array]:
    """Per-sample objective values ``[B]`` and their gradient w.r.t. ``x`` (one backward pass)."""
    values, vjp = jax.vjp(lambda x_: objective(x_, y), x)
    (grad,) = vjp(jnp.ones_like(values))
    return values, grad


# ----------------------------------------------------------------------------- geometry


def _expand(v: Array, x: Array) -> Array:
    """Broadcast a per-sample (or scalar) value ``v`` against a batch ``x``."""
    v = jnp.asarray(v, x.dtype)
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def clip_to_bounds(x: Array, bounds: Bounds) -> Array:
    return jnp.clip(x, bounds[0], bounds[1])


def project_linf(x_adv: Array, x: Array, eps: Array | float, bounds: Bounds) -> Array:
    """Project onto the L-inf ball of radius ``eps`` (scalar or per sample) around ``x``, then the box."""
    eps = _expand(eps, x)
    return clip_to_bounds(jnp.clip(x_adv, x - eps, x + eps), bounds)


def per_sample_norm(v: Array, ord: float | str) -> Array:
    """Per-sample L-p norm of ``v`` ``[B, ...] -> [B]`` for ord in {1, 2, inf}."""
    flat = v.reshape(v.shape[0], -1)
    if ord in (jnp.inf, "inf", "linf"):
        return jnp.max(jnp.abs(flat), axis=-1)
    if ord in (2, "l2"):
        return jnp.sqrt(jnp.sum(jnp.square(flat), axis=-1))
    if ord in (1, "l1"):
        return jnp.sum(jnp.abs(flat), axis=-1)
    raise ValueError(f"Unsupported norm {ord!r}; use 1, 2 or inf.")


def normalize_l2(v: Array, tiny: float = 1e-12) -> Array:
    """``v / ||v||_2`` per sample; zero where ``v`` is zero."""
    return v / (_expand(per_sample_norm(v, 2), v) + tiny)


def project_l2(x_adv: Array, x: Array, eps: Array | float, bounds: Bounds) -> Array:
    """Project ``x_adv - x`` onto the L2 ball of radius ``eps`` per sample, then clip to the box.

    Clipping after projecting can only shrink the perturbation's norm, so the result stays in both.
    """
    delta = x_adv - x
    norm = _expand(per_sample_norm(delta, 2), x)
    eps_b = _expand(eps, x)
    factor = jnp.minimum(1.0, eps_b / (norm + 1e-12))
    return clip_to_bounds(x + delta * factor, bounds)


# ----------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """A registered attack.

    Attributes:
      name: registry key (lower-case, e.g. ``"pgd"``).
      fn: the attack function (calling convention in this module's docstring).
      norm: ``"linf"``, ``"l2"``, ``"l1"`` or ``"none"``: the ball a bounded attack stays in, or the
        metric a minimum-norm attack minimises.
      kind: ``"bounded"`` (returns ``x_adv`` within eps) or ``"minimum_norm"`` (returns MinNormResult).
      test_kwargs: small keyword arguments (few steps) with which the property tests call it.
    """

    name: str
    fn: Callable[..., Any]
    norm: str
    kind: str
    test_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


REGISTRY: dict[str, AttackSpec] = {}


def register(name: str, *, norm: str, kind: str = "bounded", test_kwargs: dict[str, Any] | None = None):
    """Decorator adding an attack to :data:`REGISTRY`, which the property tests walk."""
    if norm not in ("linf", "l2", "l1", "none"):
        raise ValueError(f"norm must be linf, l2, l1 or none, got {norm!r}")
    if kind not in ("bounded", "minimum_norm"):
        raise ValueError(f"kind must be bounded or minimum_norm, got {kind!r}")

    def decorate(fn):
        if name in REGISTRY:
            raise ValueError(f"Attack {name!r} is registered twice.")
        REGISTRY[name] = AttackSpec(name, fn, norm, kind, dict(test_kwargs or {}))
        return fn

    return decorate


def parse_attack_names(value) -> tuple[str, ...]:
    """Attack names from a tuple of names or from comma-separated names on the command line (where
    ``--robustness.attacks=fgsm,pgd`` arrives as ``("fgsm,pgd",)``), lower-cased."""
    joined = value if isinstance(value, str) else ",".join(value)
    return tuple(name.strip().lower() for name in joined.split(",") if name.strip())


def get_attack(name: str) -> AttackSpec:
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"Unknown attack {name!r}; registered: {sorted(REGISTRY)}.") from None
