"""Building blocks shared by the paper models."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

LAYER_INPUTS = "intermediates"
LAYER_INPUT_GRADS = "perturbations"
_INPUT_SUFFIX = "_input"


def capture_key(layer_name: str) -> str:
    """Key under which a layer's input is stored (Flax forbids reusing the layer's own name)."""
    return layer_name + _INPUT_SUFFIX


def by_layer_name(captured: dict, layer_names) -> dict:
    """``{layer_name: value}`` from a captured ``intermediates`` / ``perturbations`` collection."""
    return {name: captured[capture_key(name)] for name in layer_names}


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling with stride 2 on NHWC input (H and W even).

    Same values as ``nn.max_pool(x, (2, 2), (2, 2))``; written as reshape + max because XLA's
    gradient of ``reduce_window`` (select-and-scatter) costs about 3x more on CPU, and attacks and
    the GFA term differentiate through pooling many times per step.
    """
    batch, height, width, channels = x.shape
    if height % 2 or width % 2:
        raise ValueError(f"max_pool_2x2 needs even spatial dims, got {x.shape}")
    return jnp.max(x.reshape(batch, height // 2, 2, width // 2, 2, channels), axis=(2, 4))


def conv_as_matmul(lhs: jax.Array, rhs: jax.Array, window_strides, padding, **_) -> jax.Array:
    """Stride-1 NHWC x HWIO convolution as im2col (shifted slices, concatenated) + one matmul.

    Same values as ``lax.conv_general_dilated``; a drop-in for ``nn.Conv(conv_general_dilated=...)``.
    Every derivative, the double backward of the GFA term included, is then a matmul or a slice /
    pad: on XLA:CPU the DEEP GFA step of the paper CNN at batch 256 ran 1.32x faster this way
    (``benchmarks/gfa_step_probe.py``), at batch 32 1.36x slower, so it is opt-in.
    """
    if tuple(window_strides) != (1,) * (lhs.ndim - 2):
        raise ValueError(f"conv_as_matmul needs stride 1, got {window_strides}")
    kh, kw, cin, cout = rhs.shape
    _, height, width, _ = lhs.shape
    if isinstance(padding, str):
        padding = jax.lax.padtype_to_pads((height, width), (kh, kw), (1, 1), padding)
    padded = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    out_h, out_w = padded.shape[1] - kh + 1, padded.shape[2] - kw + 1
    patches = jnp.concatenate(
        [padded[:, i:i + out_h, j:j + out_w, :] for i in range(kh) for j in range(kw)], axis=-1)
    return patches @ rhs.reshape(kh * kw * cin, cout)


def capture_layer_input(module: nn.Module, name: str, h: jax.Array) -> jax.Array:
    """Record ``h``, the input activation of layer ``name``, and make dL/dh available.

    ``sow`` stores h in the ``intermediates`` collection. ``perturb`` adds a zero variable in the
    ``perturbations`` collection when one is passed to ``apply``; the gradient of the loss with
    respect to that variable is dL/dh, which is how the GFA term reads layer input gradients
    (see :mod:`gfa_jax.defenses.gfa`). Without a ``perturbations`` collection both are no-ops.
    """
    h = module.perturb(capture_key(name), h, collection=LAYER_INPUT_GRADS)
    module.sow(LAYER_INPUTS, capture_key(name), h, reduce_fn=lambda _, new: new, init_fn=lambda: None)
    return h


def batch_norm(train: bool, name: str) -> nn.BatchNorm:
    """Batch norm with PyTorch's defaults (running averages ``0.9 * old + 0.1 * batch``, eps 1e-5).

    ``train``: normalise with the batch's statistics and update ``batch_stats`` (``apply`` with
    ``mutable=["batch_stats"]``); otherwise use the running averages. One difference from
    ``torch.nn.BatchNorm2d`` remains: the running variance is updated with the biased batch variance.
    """
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


# He-normal with fan_out, the initialisation of the reference CIFAR ResNets / WRNs (PyTorch's
# ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``).
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def needs_projection(in_channels: int, out_channels: int, stride: int) -> bool:
    """Whether a residual block's shortcut needs a 1x1 convolution (its width or resolution changes)."""
    return in_channels != out_channels or stride != 1


def residual_layer_names(blocks) -> tuple[str, ...]:
    """Layer names of a residual network, forward order: ``stem``, per block ``(prefix, in, out,
    stride)`` its ``conv1``, ``conv2`` and, where :func:`needs_projection`, ``shortcut``; then ``fc``."""
    names = ["stem"]
    for prefix, in_channels, out_channels, stride in blocks:
        names += [f"{prefix}_conv1", f"{prefix}_conv2"]
        if needs_projection(in_channels, out_channels, stride):
            names.append(f"{prefix}_shortcut")
    return tuple(names) + ("fc",)
