"""PI-FGSM++: Gao et al., 'Patch-wise++ Perturbation for Adversarial Targeted Attacks', 2020
[https://arxiv.org/abs/2012.15503]."""
from __future__ import annotations

import numpy as np

from gfa_jax.attacks.gradient._iterative import (
    DEFAULT_UNROLL,
    RANGE_WIDTH,
    objective_gradient,
    patchwise_ascent,
)
from gfa_jax.attacks.base import Array, Bounds, LogitsFn, register


def gaussian_kernel(size: int = 3, nsig: float = 3.0) -> np.ndarray:
    """``size x size`` Gaussian kernel sampled on ``[-nsig, nsig]``, summing to 1 (TI-FGSM's kernel)."""
    t = np.linspace(-nsig, nsig, size)
    density = np.exp(-0.5 * t**2)
    kernel = np.outer(density, density)
    return (kernel / kernel.sum()).astype(np.float32)


@register("pifgsmpp", norm="linf", test_kwargs={"steps": 3})
def pifgsmpp(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array,
    *,
    eps=RANGE_WIDTH * 16 / 255,
    steps: int = 10,
    amplification=10.0,
    project_factor=0.8,
    bounds: Bounds,
    loss: str = "ce",
    targeted: bool = False,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """Patch-wise++ iterative FGSM (Gao et al. 2020b), as torchattacks' ``PIFGSMPP``. Distance: L-inf.

    PI-FGSM (:mod:`gfa_jax.attacks.gradient.pifgsm`) whose gradient is first smoothed by a 3x3 Gaussian
    (``nsig = 3``) and whose projection term is scaled by ``project_factor``:
    ``gamma = project_factor * amplification * eps / steps``.

    torchattacks builds its Gaussian kernel with a ``swapaxes`` that turns it into a different,
    per-channel kernel; here every channel gets the plain 2-D Gaussian. Its unused ``momentum`` and
    ``prob`` arguments are left out.

    Args:
      logits_fn: batched ``x -> logits [B, K]`` on NHWC images.
      x: NHWC inputs ``[B, H, W, C]`` in ``bounds``; y: labels ``[B]`` (targets when ``targeted``).
      key: unused (common calling convention).
      eps: L-inf radius, traceable (default ``2 * 16/255``: torchattacks' 16/255 in [-1, 1] units).
      steps: number of iterations, static (default 10).
      amplification: step-size amplification factor beta, traceable (default 10).
      project_factor: weight of the projection term, traceable (default 0.8).
      bounds: the input box. loss: 'ce', 'mse', 'margin' or 'dlr'. targeted: descend instead.
      unroll: static ``lax.fori_loop`` unroll (default None: rolled, 1).

    Returns:
      ``x_adv``, same shape and dtype as ``x``, in the eps ball and the box.
    """
    del key
    gradient_fn = objective_gradient(logits_fn, y, loss, targeted)
    return patchwise_ascent(
        gradient_fn, x, None, eps=eps, steps=steps, amplification=amplification,
        project_factor=project_factor, gradient_kernel=gaussian_kernel(3, 3.0), bounds=bounds, unroll=unroll,
    )
