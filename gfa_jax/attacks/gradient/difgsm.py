"""DI2-FGSM: Xie et al., 'Improving Transferability of Adversarial Examples with Input Diversity',
CVPR 2019 [https://arxiv.org/abs/1803.06978]."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gfa_jax.attacks.gradient._iterative import (
    DEFAULT_UNROLL,
    RANGE_WIDTH,
    linf_sign_ascent,
    linf_start,
    require_images,
    step_size,
)
from gfa_jax.attacks.gradient._resample import shrink_and_shift
from gfa_jax.attacks.base import (
    Array,
    Bounds,
    LogitsFn,
    attack_objective,
    input_gradient,
    register,
)


def _diverse_placement(key: Array, shape: tuple[int, int], resize_rate: float, diversity_prob) -> tuple[Array, Array]:
    """One image's draw: with probability ``diversity_prob`` a random integer size in
    ``[floor(rate * D), D)`` per spatial side ``D`` and a random offset in ``[0, D - size)``;
    otherwise the full size at offset 0 (the identity)."""
    k_size, k_top, k_left, k_apply = jax.random.split(key, 4)
    full = jnp.array(shape, jnp.float32)
    low = jnp.array([int(side * resize_rate) for side in shape], jnp.float32)
    fraction = jax.random.uniform(k_size)  # one draw: square images stay square, as in the paper
    size = low + jnp.floor(fraction * (full - low))
    offset = jnp.floor(jnp.stack([jax.random.uniform(k_top), jax.random.uniform(k_left)]) * (full - size))
    apply = jax.random.bernoulli(k_apply, diversity_prob)
    return jnp.where(apply, size, full), jnp.where(apply, offset, 0.0)


def input_diversity(key: Array, x: Array, resize_rate: float = 0.9, diversity_prob=0.5) -> Array:
    """DI's random resize-and-pad of an NHWC batch, drawn independently per sample from ``key``:
    with probability ``diversity_prob`` a sample is bilinearly shrunk to a random integer size and
    zero-padded back to its shape at a random offset (:func:`_resample.shrink_and_shift`).

    The output keeps the input's shape (static), so only ``resize_rate <= 1`` is supported
    (torchattacks' ``resize_rate > 1`` grows the image, which a fixed-size model cannot take).
    Padding is 0, the mid-grey of our [-1, 1] range, as in the paper's [-1, 1] implementation.
    """
    require_images(x, "DI2-FGSM")
    if not 0.0 < resize_rate <= 1.0:
        raise ValueError(f"resize_rate must be in (0, 1] to keep the input shape, got {resize_rate}.")
    keys = jax.random.split(key, x.shape[0])
    place = lambda k: _diverse_placement(k, x.shape[1:3], resize_rate, diversity_prob)
    size, offset = jax.vmap(place)(keys)
    return shrink_and_shift(x, size, offset)


@register("difgsm", norm="linf", test_kwargs={"steps": 3})
def difgsm(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array,
    *,
    eps=RANGE_WIDTH * 8 / 255,
    alpha=None,
    steps: int = 10,
    decay=0.0,
    resize_rate: float = 0.9,
    diversity_prob=0.5,
    random_start: bool = False,
    bounds: Bounds,
    loss: str = "ce",
    targeted: bool = False,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """Diverse-Inputs iterative FGSM (Xie et al. 2019), with optional momentum (M-DI2-FGSM).
    Distance measure: L-inf.

    As MI-FGSM, but each step's gradient is taken through a random transformation ``T_t``
    (:func:`input_diversity`, fresh per step and per sample)::

        g_t     = grad_x L(f(T_t(x_t)), y)
        m_{t+1} = decay * m_t + g_t / mean|g_t|
        x_{t+1} = Proj_{eps, bounds}(x_t + alpha * sign(m_{t+1}))

    Args:
      logits_fn: batched ``x -> logits [B, K]`` on NHWC images.
      x: NHWC inputs ``[B, H, W, C]`` in ``bounds``; y: labels ``[B]`` (targets when ``targeted``).
      key: draws the random start and the transformations.
      eps: L-inf radius, traceable (default ``2 * 8/255``: torchattacks' 8/255 in [-1, 1] units).
      alpha: step size, traceable; None (default): eps / 4 (torchattacks: 2/255 at eps 8/255), so it scales with eps in a sweep.
      steps: number of iterations, static (default 10).
      decay: momentum factor, traceable (default 0.0: plain DI2-FGSM).
      resize_rate: static, smallest resize fraction, in (0, 1] (default 0.9).
      diversity_prob: probability of transforming a sample, traceable (default 0.5).
      random_start: static, start uniformly in the eps ball (default False).
      bounds: the input box. loss: 'ce', 'mse', 'margin' or 'dlr'. targeted: descend instead.
      unroll: static ``lax.fori_loop`` unroll (default None: rolled, 1).

    Returns:
      ``x_adv``, same shape and dtype as ``x``, in the eps ball and the box.
    """
    alpha = step_size(alpha, eps, 0.25)
    require_images(x, "DI2-FGSM")
    objective = attack_objective(logits_fn, loss, targeted)

    def gradient_fn(x_adv: Array, step_key: Array) -> Array:
        diverse_objective = lambda x_, y_: objective(input_diversity(step_key, x_, resize_rate, diversity_prob), y_)
        return input_gradient(diverse_objective, x_adv, y)[1]

    k_start, k_steps = jax.random.split(key)
    x_start = linf_start(k_start, x, eps, bounds, random_start)
    return linf_sign_ascent(
        gradient_fn, x, x_start, k_steps, eps=eps, alpha=alpha, steps=steps, decay=decay,
        bounds=bounds, unroll=unroll,
    )
