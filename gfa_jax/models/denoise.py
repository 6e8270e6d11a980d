"""DENOISE: feature denoising blocks (DeepDefense's Table 1-2 baseline) and the CNN that uses them.

Xie, Wu, van der Maaten, Yuille & He, 'Feature Denoising for Improving Adversarial Robustness',
CVPR 2019 [https://arxiv.org/abs/1812.03411]. A denoising block filters a feature map ``x`` (N = H*W
positions, C channels) with a non-local mean, then a 1x1 convolution, added back residually::

    y_i = x_i + conv1x1( (1 / C(x)) * sum_j f(x_i, x_j) * x_j )

with the paper's weightings ``f`` (Section 4):

- ``"embedded_gaussian"`` (their "Gaussian (softmax)", the version of their released models and
  our default): ``f = exp(theta(x_i) . phi(x_j) / sqrt(d))``, ``C = sum_j f``, i.e. a softmax over
  j; theta, phi are 1x1 convolutions to d = C/2 channels;
- ``"gaussian"``: the same without embeddings, ``f = exp(x_i . x_j / sqrt(C))``;
- ``"dot_product"``: ``f = x_i . x_j``, ``C = N``.

Xie et al. follow the 1x1 convolution with a BatchNorm whose scale starts at 0, so every block
starts as the identity. The paper CNN has no normalisation, so here the 1x1 convolution itself
starts at zero, without a bias (in the original a BatchNorm follows it): the same identity at
initialisation.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gfa_jax.models.cnn import PaperCNN

NONLOCAL_VERSIONS = ("embedded_gaussian", "gaussian", "dot_product")


def default_samples_per_chunk() -> int | None:
    """Chunked non-local means on CPU (see :func:`nonlocal_mean`), the whole batch elsewhere."""
    return 4 if jax.default_backend() == "cpu" else None


def nonlocal_mean(queries: jax.Array, keys: jax.Array, values: jax.Array, version: str,
                  samples_per_chunk: int | None = None) -> jax.Array:
    """``(1/C(x)) sum_j f(x_i, x_j) values_j`` over all positions of NHWC maps -> values' shape.

    ``queries``/``keys`` give ``f`` (theta(x), phi(x), or x itself); the [N x N] weights are formed
    explicitly (4 MB a sample at the paper CNN's 32x32 maps). ``samples_per_chunk``: form them for
    that many samples at a time and recompute them in the backward pass instead of storing them
    (``jax.lax.map`` + ``jax.checkpoint``); on CPU this ran the first block's forward and backward
    about 2x faster at batch 128 than the whole batch's 0.5 GB of weights at once. ``None``: all at
    once, for accelerators.
    """
    if samples_per_chunk is not None:
        def one_sample(args):
            return nonlocal_mean(*(a[None] for a in args), version)[0]

        return jax.lax.map(jax.checkpoint(one_sample), (queries, keys, values), batch_size=samples_per_chunk)
    batch, height, width, channels = values.shape
    q = queries.reshape(batch, height * width, -1)
    k = keys.reshape(batch, height * width, -1)
    v = values.reshape(batch, height * width, channels)
    similarity = jnp.einsum("bic,bjc->bij", q, k)
    if version == "dot_product":
        weights = similarity / (height * width)
    elif version in ("gaussian", "embedded_gaussian"):
        weights = jax.nn.softmax(similarity / jnp.sqrt(q.shape[-1]).astype(q.dtype), axis=-1)
    else:
        raise ValueError(f"Unknown non-local version {version!r}; choose one of {NONLOCAL_VERSIONS}.")
    return jnp.einsum("bij,bjc->bic", weights, v).reshape(values.shape)


class DenoisingBlock(nn.Module):
    """``y = x + conv1x1(nonlocal_mean(x))`` on NHWC feature maps (Xie et al. 2019, Figure 4).

    Parameters with C input channels: ``embedded_gaussian`` 2 * C * (C // 2) (theta, phi) + C * C
    (the output 1x1 conv); the other versions C * C.
    """

    version: str = "embedded_gaussian"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        if self.version == "embedded_gaussian":
            # Small embeddings at init (std 0.01, our recollection of the authors' code): near-uniform
            # softmax weights, i.e. a plain mean, until training sharpens them.
            embed = lambda name: nn.Conv(max(channels // 2, 1), (1, 1), use_bias=False, name=name,
                                         kernel_init=nn.initializers.normal(0.01))
            queries, keys = embed("theta")(x), embed("phi")(x)
        else:
            queries = keys = x
        denoised = nonlocal_mean(queries, keys, x, self.version, default_samples_per_chunk())
        update = nn.Conv(channels, (1, 1), use_bias=False, kernel_init=nn.initializers.zeros, name="conv")
        return x + update(denoised)


class PaperCNNDenoise(PaperCNN):
    """:class:`PaperCNN` with a denoising block in each convolutional layer (DeepDefense's DENOISE).

    "Feature-denoising layers inserted into the first and second convolutional layers" (Section
    4.2): each block filters its conv layer's activated output at the conv's own resolution, before
    the 2x2 pooling, as Xie et al. place theirs at the end of a ResNet stage, before the next stage
    downsamples. Layer names and captured layer inputs are PaperCNN's (``conv1 .. fc3``), so GFA is
    recorded for the same layers; the blocks are ``denoise1``, ``denoise2``.
    """

    denoise_version: str = "embedded_gaussian"

    def conv_output(self, h: jax.Array, index: int) -> jax.Array:
        return DenoisingBlock(self.denoise_version, name=f"denoise{index + 1}")(h)
