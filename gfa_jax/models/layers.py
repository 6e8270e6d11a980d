"""Building blocks shared by the paper models."""
from __future__ import annotations

import functools

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

    Same values as ``nn.max_pool(x, (2, 2), (2, 2))``, NaN included. Written as two pairwise maxima
    over contiguous halves (rows of a window, then the two column halves of the fused ``W x C`` axis)
    because the gradient is then plain selects and pads that XLA fuses: on XLA:CPU the gradient
    of ``relu`` + pooling on a ``[256, 32, 32, 32]`` activation took 33 ms as ``reduce_window``
    (select-and-scatter) or a reshape + ``max`` over two axes (a tie-count and a divide), and
    12 ms this way.

    At a tie the whole gradient goes to one maximal element (the first of each pairwise comparison:
    upper row, then left column), as PyTorch's pooling gives it to one. ``jnp.maximum``'s
    derivative would split it equally, through a divide whose weights XLA stores per element: in
    the DEEP GFA step's double backward, 8 such fusions took about 50 ms of a 0.55 s step.
    Either way the gradient is a subgradient: it sums to the window's output gradient and lands
    only on maximal elements.
    """
    batch, height, width, channels = x.shape
    if height % 2 or width % 2:
        raise ValueError(f"max_pool_2x2 needs even spatial dims, got {x.shape}")
    # [B, H/2, 2 (row in window), W/2, 2 * C (column in window, then channel)]: a free reshape.
    windows = x.reshape(batch, height // 2, 2, width // 2, 2 * channels)
    rows = _maximum_to_first(windows[:, :, 0], windows[:, :, 1])
    return _maximum_to_first(rows[..., :channels], rows[..., channels:])


def _maximum_to_first(a: jax.Array, b: jax.Array) -> jax.Array:
    """``jnp.maximum(a, b)`` whose derivative at ``a == b`` is ``a``'s alone (a select, no divide)."""
    return jnp.where((a >= b) | jnp.isnan(a), a, b)


# XLA:CPU's convolution kernels take a slow path when the input has fewer than 4 channels: the
# paper CNN's first convolution (3 -> 32, 32x32, batch 256) ran in 47 ms, and in 15 ms with the
# image zero-padded to 4 channels (and the kernel to 4 input rows): same values, as the added
# channel and kernel rows are zeros.
_MIN_CPU_CONV_CHANNELS = 4


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision=None,
                         preferred_element_type=None) -> jax.Array:
    """``lax.conv_general_dilated`` as our models call it, with two rewrites for XLA:CPU.

    A drop-in for ``nn.Conv(conv_general_dilated=...)`` (NHWC input, HWIO kernel, as Flax calls it).
    On CPU, for ungrouped channels-last convolutions: inputs of 1-3 channels are zero-padded to 4
    (exact: zero channels times zero kernel rows; the gradient is a slice), and a 3x3, stride-1,
    SAME convolution goes through :func:`conv3x3_same` (same values, faster weight gradients).
    Anything else is ``lax.conv_general_dilated`` itself.
    """
    plain = functools.partial(
        jax.lax.conv_general_dilated, window_strides=window_strides, padding=padding,
        lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type)
    if not (feature_group_count == 1 and batch_group_count == 1
            and _channels_last(dimension_numbers, lhs.ndim) and jax.default_backend() == "cpu"):
        return plain(lhs, rhs)
    channels = lhs.shape[-1]
    if channels < _MIN_CPU_CONV_CHANNELS:
        extra = _MIN_CPU_CONV_CHANNELS - channels
        lhs = jnp.pad(lhs, [(0, 0)] * (lhs.ndim - 1) + [(0, extra)])
        rhs = jnp.pad(rhs, [(0, 0)] * (rhs.ndim - 2) + [(0, extra), (0, 0)])
    if _is_3x3_same(rhs.shape, window_strides, padding, lhs_dilation, rhs_dilation) and precision is None \
            and preferred_element_type is None:
        return conv3x3_same(lhs, rhs)
    return plain(lhs, rhs)


def _is_3x3_same(kernel_shape, window_strides, padding, lhs_dilation, rhs_dilation) -> bool:
    same = padding == "SAME" or (not isinstance(padding, str) and tuple(map(tuple, padding)) == ((1, 1), (1, 1)))
    return (tuple(kernel_shape[:2]) == (3, 3) and tuple(window_strides) == (1, 1) and same
            and (lhs_dilation is None or tuple(lhs_dilation) == (1, 1))
            and (rhs_dilation is None or tuple(rhs_dilation) == (1, 1)))


def _xla_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


@jax.custom_vjp
def conv3x3_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """3x3, stride-1, zero-padded ("SAME") NHWC x HWIO convolution with an XLA:CPU-friendly VJP.

    Why (issue 15, ``results/benchmarks/cpu_profile.md``): XLA computes a convolution's kernel gradient
    as another convolution whose operands it first transposes to batch-minor layouts
    (``[C, H, W, B]``); on CPU those transposes were fused with the elementwise work before them
    and took 161 ms of the DEEP GFA step's 880 ms for conv1 alone. Here the kernel gradient is
    shifted copies of the operands + one matmul (:func:`conv3x3_kernel_gradient`; no transpose of
    the activations), and the input gradient is this same
    convolution with the flipped kernel, so second derivatives (the GFA term's) stay on the same
    two paths. Values equal XLA's convolution up to float32 summation order.
    """
    return _xla_conv3x3(x, kernel)


def _conv3x3_forward(x, kernel):
    # The output through conv3x3_same itself, not _xla_conv3x3: an outer derivative (the GFA
    # term's second order) then differentiates it with this rule too, not with XLA's.
    return conv3x3_same(x, kernel), (x, kernel)


def _patches(x: jax.Array) -> jax.Array:
    """``[B*H*W, 9*C]`` im2col patches of ``x`` for a 3x3 SAME window, taps in row-major order."""
    return im2col(x, (3, 3), ((1, 1), (1, 1))).reshape(-1, 9 * x.shape[-1])


def _contract_rows(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a.T @ b`` as one ``dot_general`` over the rows (no separate transpose in the program)."""
    return jax.lax.dot_general(a, b, (((0,), (0,)), ((), ())))


def conv3x3_kernel_gradient(x: jax.Array, cotangent: jax.Array) -> jax.Array:
    """``d <cotangent, conv3x3_same(x, k)> / d k`` as shifted copies of the operands times one matmul.

    The gradient is ``g[i, j] = sum_bhw xpad[b, h+i, w+j, :]^T c[b, h, w, :]``: nine taps, one matmul
    over the B*H*W rows once the taps are laid side by side. Two layouts, whichever copies less:

    - split taps (channels of similar width): the three column taps of ``x`` side by side and the
      three row taps of ``c`` side by side, ``[3C]`` and ``[3O]`` columns over ``B*(H+2)*W`` rows; the
      one ``[3C, 3O]`` product holds every ``(i, j)`` block. On the paper CNN's conv2 (32 -> 32,
      16x16, batch 256) 22-26 ms against 42-48 ms for full patches of either operand;
    - full im2col patches of the operand with fewer channels (``[9C]`` columns), since
      ``sum_bhw xpad[b, h+i, w+j, :] c[b, h, w, :]`` equals ``sum_bhw x[b, h, w, :] cpad[b, h+2-i, w+2-j, :]``
      (conv1's 4 -> 32 channels: the patches of the image are a third of the split layout's copies).
    """
    channels, features = x.shape[-1], cotangent.shape[-1]
    # The matmul contracts the long B*H*W axis. Where XLA:CPU copies an operand into another layout
    # for it, the barrier keeps the elementwise work that produced the operand (ReLU and pooling
    # gradients) out of that copy: fused into a transposing copy it ran 10x slower than the copy
    # alone (results/benchmarks/cpu_profile.md).
    x, cotangent = jax.lax.optimization_barrier((x, cotangent))
    height = x.shape[1]
    if 3 * (channels + features) * (height + 2) < 9 * min(channels, features) * height:
        return _kernel_gradient_split_taps(x, cotangent)
    if channels <= features:
        gradient = _contract_rows(_patches(x), cotangent.reshape(-1, features))  # [9C, O]: taps (i, j), C
        return gradient.reshape(3, 3, channels, features)
    gradient = _contract_rows(x.reshape(-1, channels), _patches(cotangent))  # [C, 9O]: taps (2 - i, 2 - j)
    return jnp.flip(gradient.reshape(channels, 3, 3, features), (1, 2)).transpose(1, 2, 0, 3)


def _kernel_gradient_split_taps(x: jax.Array, cotangent: jax.Array) -> jax.Array:
    """:func:`conv3x3_kernel_gradient` with the column taps on ``x`` and the row taps on ``cotangent``.

    Row ``(b, r, w)`` of a ``[B, H+2, W]`` grid pairs ``xpad[b, r, w+j]`` (column tap ``j``) with
    ``c[b, r-i, w]`` (row tap ``i``, zero outside the image), so their product summed over rows is
    ``sum_bhw xpad[b, h+i, w+j] c[b, h, w]``: the kernel gradient's tap ``(i, j)``.
    """
    channels, features = x.shape[-1], cotangent.shape[-1]
    column_taps = im2col(x, (1, 3), ((1, 1), (1, 1)))  # [B, H+2, W, 3C]: xpad[b, r, w+j]
    row_taps = jnp.concatenate([jnp.pad(cotangent, ((0, 0), (i, 2 - i), (0, 0), (0, 0))) for i in range(3)],
                               axis=-1)
    blocks = _contract_rows(column_taps.reshape(-1, 3 * channels), row_taps.reshape(-1, 3 * features))
    return blocks.reshape(3, channels, 3, features).transpose(2, 0, 1, 3)  # [(j, C), (i, O)] -> [i, j, C, O]


def _conv3x3_backward(residuals, cotangent):
    x, kernel = residuals
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)  # the transposed convolution, as a convolution
    return conv3x3_same(cotangent, flipped), conv3x3_kernel_gradient(x, cotangent)


conv3x3_same.defvjp(_conv3x3_forward, _conv3x3_backward)


def dot_general(lhs: jax.Array, rhs: jax.Array, dimension_numbers, precision=None,
                preferred_element_type=None) -> jax.Array:
    """``lax.dot_general`` as our Dense layers call it, with a layout-friendly VJP for ``x @ kernel``.

    A drop-in for ``nn.Dense(dot_general=...)``: on CPU, a ``[B, I] @ [I, O]`` product with default
    precision goes through :func:`matmul`; anything else (other backends included: unmeasured there)
    is ``lax.dot_general`` itself.
    """
    (lhs_contracting, rhs_contracting), batch = dimension_numbers
    if (lhs.ndim == rhs.ndim == 2 and tuple(lhs_contracting) == (1,) and tuple(rhs_contracting) == (0,)
            and not any(batch) and precision is None and preferred_element_type is None
            and jax.default_backend() == "cpu"):
        return matmul(lhs, rhs)
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                               preferred_element_type=preferred_element_type)


@jax.custom_vjp
def matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``x @ kernel`` whose kernel gradient is computed in the kernel's own ``[I, O]`` layout.

    Why (issue 15): JAX's transpose of ``x @ kernel`` with respect to the kernel is a ``[O, I]``
    product followed by a transpose. In the DEEP GFA step XLA:CPU fused that transpose into each
    of Adam's updates of the kernel (a strided read of ``[1000, 2048]`` in each), instead of
    computing the product in place. Here the kernel gradient is one ``dot_general`` over the batch
    rows with the kernel's layout, and the input gradient is ``cotangent @ kernel.T``; same values.
    The paper CNN's DEEP step ran 4-6 % faster (two interleaved A/B runs of 20 and 30 steps).
    """
    return x @ kernel


def _matmul_forward(x, kernel):
    # Through matmul itself, so an outer derivative (the GFA term's) uses this rule again.
    return matmul(x, kernel), (x, kernel)


def _matmul_backward(residuals, cotangent):
    x, kernel = residuals
    return cotangent @ kernel.T, _contract_rows(x, cotangent)


matmul.defvjp(_matmul_forward, _matmul_backward)


def _channels_last(dimension_numbers, ndim: int) -> bool:
    """Whether the convolution is NHWC x HWIO -> NHWC (what Flax passes for 2-D images)."""
    if ndim != 4 or dimension_numbers is None or isinstance(dimension_numbers[0], str):
        return False
    lhs_spec, rhs_spec, out_spec = (tuple(spec) for spec in dimension_numbers)
    return lhs_spec == out_spec == (0, 3, 1, 2) and rhs_spec == (3, 2, 0, 1)


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
    return im2col(lhs, (kh, kw), padding) @ rhs.reshape(kh * kw * cin, cout)


def im2col(x: jax.Array, window: tuple[int, int], padding) -> jax.Array:
    """``[B, H', W', kh*kw*C]``: the stride-1 ``window`` patches of NHWC ``x`` (shifted slices of the
    padded input; taps in row-major order, then channels). ``padding``: a string or
    ``((top, bottom), (left, right))`` as ``lax.conv_general_dilated`` takes it.

    Built in two concatenates, the column taps and then the row taps of those, rather than one of
    ``kh*kw`` slices: XLA:CPU fuses these into loop fusions, where the nine-way ``concatenate`` of a
    3x3 window stayed an op of its own at 2 GB/s. The paper CNN's conv1 patches (``[256, 32, 32, 36]``):
    12 ms against 21 ms alone, and the nine-way op took about 40 ms inside the DEEP GFA step.
    """
    kh, kw = window
    _, height, width, _ = x.shape
    if isinstance(padding, str):
        padding = jax.lax.padtype_to_pads((height, width), (kh, kw), (1, 1), padding)
    padded = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    out_h, out_w = padded.shape[1] - kh + 1, padded.shape[2] - kw + 1
    columns = jnp.concatenate([padded[:, :, j:j + out_w, :] for j in range(kw)], axis=-1)
    return jnp.concatenate([columns[:, i:i + out_h] for i in range(kh)], axis=-1)


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
