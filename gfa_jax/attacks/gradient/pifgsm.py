"""PI-FGSM: Gao et al., 'Patch-wise Attack for Fooling Deep Neural Network', ECCV 2020
[https://arxiv.org/abs/2007.06765]."""
from __future__ import annotations

from gfa_jax.attacks.gradient._iterative import (
    DEFAULT_UNROLL,
    RANGE_WIDTH,
    objective_gradient,
    patchwise_ascent,
)
from gfa_jax.attacks.base import Array, Bounds, LogitsFn, register


@register("pifgsm", norm="linf", test_kwargs={"steps": 3})
def pifgsm(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array,
    *,
    eps=RANGE_WIDTH * 16 / 255,
    steps: int = 10,
    amplification=10.0,
    bounds: Bounds,
    loss: str = "ce",
    targeted: bool = False,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """Patch-wise iterative FGSM (Gao et al. 2020a), as torchattacks' ``PIFGSM``. Distance: L-inf.

    Steps of size ``amplification * eps / steps``; the part of the accumulated noise that the eps
    ball cuts off is spread onto each pixel's 3x3 neighbourhood by the project kernel (uniform,
    zero centre), with ``gamma = amplification * eps / steps``. The loop is
    :func:`gfa_jax.attacks.gradient._iterative.patchwise_ascent` with ``project_factor = 1``.

    torchattacks' ``momentum`` and ``prob`` arguments are unused there and are left out here.
    torchattacks has no targeted mode for PIFGSM; ``targeted=True`` here descends the loss of ``y``.

    Args:
      logits_fn: batched ``x -> logits [B, K]`` on NHWC images.
      x: NHWC inputs ``[B, H, W, C]`` in ``bounds``; y: labels ``[B]`` (targets when ``targeted``).
      key: unused (common calling convention).
      eps: L-inf radius, traceable (default ``2 * 16/255``: torchattacks' 16/255 in [-1, 1] units).
      steps: number of iterations, static (default 10).
      amplification: step-size amplification factor beta, traceable (default 10).
      bounds: the input box. loss: 'ce', 'mse', 'margin' or 'dlr'.
      unroll: static ``lax.fori_loop`` unroll (default None: rolled, 1).

    Returns:
      ``x_adv``, same shape and dtype as ``x``, in the eps ball and the box.
    """
    del key
    gradient_fn = objective_gradient(logits_fn, y, loss, targeted)
    return patchwise_ascent(
        gradient_fn, x, None, eps=eps, steps=steps, amplification=amplification, project_factor=1.0,
        bounds=bounds, unroll=unroll,
    )
