"""Wide ResNet (Zagoruyko & Komodakis, 2016) for CIFAR: WRN-28-10 of the layer-wise adversarial
training paper's Table IX and of the robustness leaderboards."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gfa_jax.models.layers import (batch_norm, capture_layer_input, conv_kernel_init, needs_projection,
                                    residual_layer_names)


class WideResNet(nn.Module):
    """WRN-depth-widen with pre-activation basic blocks, as in the reference CIFAR code
    (xternalz/WideResNet-pytorch, RobustBench's ``WideResNet``, dropout 0).

    A 3x3 stem convolution of 16 channels; three groups of ``(depth - 4) / 6`` blocks of
    ``16k, 32k, 64k`` channels (strides 1, 2, 2); a final BN - ReLU, global average pooling and a
    Dense classifier with bias. Block: ``h = relu(bn1(x))``, ``out = conv2(relu(bn2(conv1(h))))``,
    returning ``out + x`` or, where the width or stride changes, ``out + shortcut(h)`` with a 1x1
    convolution (as the reference: the projection reads the pre-activated ``h``). Convolutions have
    no bias. ``depth=28, widen=10``: 36,479,194 trainable parameters for 10 classes, 36,536,884 for
    100; ``depth=10, widen=1`` is a CPU-sized one.

    Layers (inputs captured), flat names in forward order: ``stem``; per block ``g{group}b{block}_``
    ``conv1``, ``conv2`` and, where the shape changes, ``shortcut``; then ``fc``. ``conv1``'s and
    ``shortcut``'s input is the block's ``relu(bn1(x))``, ``conv2``'s ``relu(bn2(conv1(...)))``.
    """

    num_classes: int = 10
    depth: int = 28
    widen: int = 10

    def _blocks(self):
        """``(prefix, in_channels, out_channels, stride)`` of every block."""
        if (self.depth - 4) % 6 or self.depth < 10:
            raise ValueError(f"WideResNet depth must be 6n + 4 with n >= 1, got {self.depth}.")
        per_group = (self.depth - 4) // 6
        blocks, channels = [], 16
        for group, (width, stride) in enumerate(zip((16, 32, 64), (1, 2, 2)), start=1):
            for block in range(1, per_group + 1):
                out = width * self.widen
                blocks.append((f"g{group}b{block}", channels, out, stride if block == 1 else 1))
                channels = out
        return blocks

    @property
    def layer_names(self) -> tuple[str, ...]:
        return residual_layer_names(self._blocks())

    def _conv(self, name: str, h: jax.Array, features: int, kernel: int, stride: int = 1) -> jax.Array:
        h = capture_layer_input(self, name, h)
        return nn.Conv(features, (kernel, kernel), strides=stride, padding=kernel // 2, use_bias=False,
                       kernel_init=conv_kernel_init, name=name)(h)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = self._conv("stem", x, 16, 3)
        for prefix, in_channels, out_channels, stride in self._blocks():
            h = nn.relu(batch_norm(train, f"{prefix}_bn1")(x))
            out = self._conv(f"{prefix}_conv1", h, out_channels, 3, stride)
            out = nn.relu(batch_norm(train, f"{prefix}_bn2")(out))
            out = self._conv(f"{prefix}_conv2", out, out_channels, 3)
            if needs_projection(in_channels, out_channels, stride):
                x = self._conv(f"{prefix}_shortcut", h, out_channels, 1, stride)
            x = x + out
        x = nn.relu(batch_norm(train, "final_bn")(x))
        x = jnp.mean(x, axis=(1, 2))
        x = capture_layer_input(self, "fc", x)
        return nn.Dense(self.num_classes, name="fc")(x)
