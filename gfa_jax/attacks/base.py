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
  [-1, 1] (``gfa_jax.data.MODEL_INPUT_BOUNDS``). Attacks never leave it. An omitted ``eps`` is the
  attack's default radius scaled to the box: 8/255 of its width for PGD and most L-inf attacks.
- ``eps`` and step sizes are traceable (``jax.vmap`` over an array of eps works); step counts,
  restarts and loss names are static Python values.
- Bounded attacks return ``x_adv`` with ``x_adv`` in ``bounds`` and in the eps ball around ``x``.
  Minimum-norm attacks return a :class:`MinNormResult`.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gfa_jax.losses import cross_entropy, mse_onehot

Array = jax.Array
LogitsFn = Callable[[Array], Array]
Bounds = tuple[float, float]

# The attacks' default radii are written for a box of this width ([-1, 1], our models' inputs) and
# scale with the width of the caller's ``bounds``: PGD's default 2 * 8/255 becomes torchattacks'
# 8/255 on [0, 1] images.
DEFAULT_BOX_WIDTH = 2.0


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

        eps_parameter = inspect.signature(fn).parameters.get("eps")
        default_eps = None if eps_parameter is None else eps_parameter.default

        @functools.wraps(fn)
        def attack(logits_fn, x, y, key, **kwargs):
            if "bounds" in kwargs:  # without it, Python's TypeError names the missing keyword
                check_attack_inputs(name, x, y, bounds=kwargs["bounds"], eps=kwargs.get("eps"))
                if "eps" not in kwargs and isinstance(default_eps, (int, float)):
                    kwargs["eps"] = default_eps * box_width(kwargs["bounds"]) / DEFAULT_BOX_WIDTH
            return fn(logits_fn, x, y, key, **kwargs)

        REGISTRY[name] = AttackSpec(name, attack, norm, kind, dict(test_kwargs or {}))
        return attack

    return decorate


def box_width(bounds: Bounds) -> float:
    return float(bounds[1]) - float(bounds[0])


def _is_concrete(value) -> bool:
    return value is not None and not isinstance(value, jax.core.Tracer)


def check_attack_inputs(name: str, x, y, *, bounds, eps=None) -> None:
    """Reject inputs an attack cannot mean: bad bounds, mismatched shapes, eps < 0 or NaN, x outside bounds.

    Shapes and bounds are static and always checked; eps and the range of x only where they are
    concrete values (an attack called outside ``jit``/``vmap``), since a traced value cannot raise.
    """
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: bounds must be a pair (low, high) of numbers, e.g. bounds=(0.0, 1.0) for "
                         f"images in [0, 1]; got {bounds!r}.") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{name}: bounds must satisfy low < high (both finite), got {bounds!r}.")
    if getattr(y, "ndim", 1) != 1 or getattr(x, "ndim", 2) < 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: expected x of shape [B, ...] and integer labels y of shape [B]; got x "
                         f"{getattr(x, 'shape', None)} and y {getattr(y, 'shape', None)}.")
    if _is_concrete(eps):
        eps_values = np.asarray(eps, np.float64)
        if not np.all(np.isfinite(eps_values)) or np.any(eps_values < 0):
            raise ValueError(f"{name}: eps must be finite and >= 0, got {eps!r}.")
    if _is_concrete(x):
        tolerance = 1e-5 * (high - low)
        values = np.asarray(x)  # concrete, also when closed over inside a trace: no traced ops
        x_min, x_max = float(values.min()), float(values.max())
        if x_min < low - tolerance or x_max > high + tolerance:
            raise ValueError(
                f"{name}: inputs range over [{x_min:.4g}, {x_max:.4g}], outside bounds ({low:g}, {high:g}). Pass "
                "bounds=(low, high) of your model's input range (e.g. (0.0, 1.0) for images in [0, 1]; gfa-jax's "
                "own models take (-1.0, 1.0)), or rescale the inputs.")


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
