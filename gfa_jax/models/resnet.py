"""ResNet-18 for CIFAR (He et al., 2016, in the CIFAR form of kuangliu/pytorch-cifar): the model
that robustness papers and leaderboards most often train and compare against."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gfa_jax.models.layers import (batch_norm, capture_layer_input, conv_kernel_init, needs_projection,
                                    residual_layer_names)


class ResNet(nn.Module):
    """A CIFAR ResNet of basic blocks: 3x3 stem conv of 64 channels - BN - ReLU (no max pool), four
    stages of ``blocks_per_stage`` basic blocks of 64, 128, 256, 512 channels (strides 1, 2, 2, 2),
    global average pooling, Dense with bias.

    Basic block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, the shortcut a 1x1
    convolution + BN where the width or stride changes, the identity elsewhere. Convolutions have
    no bias. ``(2, 2, 2, 2)`` is ResNet-18: 11,173,962 trainable parameters for 10 classes.
    ``width`` scales every channel count (``width=1/8``: a CPU-sized ResNet-18 with the same layers).

    Layers (inputs captured), flat names in forward order: ``stem``; per block ``s{stage}b{block}_``
    ``conv1``, ``conv2`` and, where the shape changes, ``shortcut``; then ``fc``. ``conv1``'s and
    ``shortcut``'s input is the block input (a ReLU output), ``conv2``'s ``relu(bn1(conv1(...)))``.
    """

    num_classes: int = 10
    blocks_per_stage: Sequence[int] = (2, 2, 2, 2)
    width: float = 1.0

    def _channels(self, count: int) -> int:
        return max(1, int(round(count * self.width)))

    def _blocks(self):
        """``(prefix, in_channels, out_channels, stride)`` of every block."""
        blocks, channels = [], self._channels(64)
        for stage, (count, stage_width) in enumerate(zip(self.blocks_per_stage, (64, 128, 256, 512)), start=1):
            for block in range(1, count + 1):
                out = self._channels(stage_width)
                stride = 2 if block == 1 and stage > 1 else 1
                blocks.append((f"s{stage}b{block}", channels, out, stride))
                channels = out
        return blocks

    @property
    def layer_names(self) -> tuple[str, ...]:
        return residual_layer_names(self._blocks())

    def _conv_bn(self, name: str, h: jax.Array, features: int, kernel: int, stride: int, train: bool) -> jax.Array:
        h = capture_layer_input(self, name, h)
        h = nn.Conv(features, (kernel, kernel), strides=stride, padding=kernel // 2, use_bias=False,
                    kernel_init=conv_kernel_init, name=name)(h)
        return batch_norm(train, f"{name}_bn")(h)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = nn.relu(self._conv_bn("stem", x, self._channels(64), 3, 1, train))
        for prefix, in_channels, out_channels, stride in self._blocks():
            out = nn.relu(self._conv_bn(f"{prefix}_conv1", x, out_channels, 3, stride, train))
            out = self._conv_bn(f"{prefix}_conv2", out, out_channels, 3, 1, train)
            if needs_projection(in_channels, out_channels, stride):
                x = self._conv_bn(f"{prefix}_shortcut", x, out_channels, 1, stride, train)
            x = nn.relu(x + out)
        x = jnp.mean(x, axis=(1, 2))
        x = capture_layer_input(self, "fc", x)
        return nn.Dense(self.num_classes, name="fc")(x)
