"""C&W L-inf: PGD on Carlini & Wagner's margin objective, the bounded form in which adversarial
training papers report "C&W" at a fixed eps (Carlini & Wagner, 'Towards Evaluating the Robustness of
Neural Networks', S&P 2017 [https://arxiv.org/abs/1608.04644], objective f6 with kappa 0, optimised
by Madry et al.'s PGD)."""
from __future__ import annotations

from gfa_jax.attacks.gradient._iterative import DEFAULT_UNROLL, RANGE_WIDTH
from gfa_jax.attacks.base import Array, Bounds, LogitsFn, register
from gfa_jax.attacks.gradient.pgd import pgd


@register("cw_linf", norm="linf", test_kwargs={"steps": 3})
def cw_linf(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array,
    *,
    eps=RANGE_WIDTH * 8 / 255,
    alpha=None,
    steps: int = 30,
    random_start: bool = True,
    bounds: Bounds,
    targeted: bool = False,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """PGD ascending the margin ``max_{j != y} z_j - z_y`` (C&W's f6). Distance measure: L-inf.

    Unlike :func:`gfa_jax.attacks.cw_l2` (minimum-norm, unbounded) it answers "is there an
    adversarial within eps", so its robust accuracy sits beside FGSM / PGD at the same eps.

    Args:
      logits_fn, x, y, key, eps, alpha, random_start, bounds, targeted, unroll: as :func:`pgd`.
      steps: iterations, static (default 30).

    Returns:
      ``x_adv``, same shape and dtype as ``x``, in the eps ball and the box.
    """
    return pgd(logits_fn, x, y, key, eps=eps, alpha=alpha, steps=steps, random_start=random_start,
               bounds=bounds, loss="margin", targeted=targeted, unroll=unroll)
