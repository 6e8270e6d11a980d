"""WideResNet-28-10 for CIFAR-100 (layer-wise adversarial training paper, Table IX), without batch norm."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gfa_jax.models.layers import capture_layer_input


class WideResNet(nn.Module):
    """WRN-depth-widen (Zagoruyko & Komodakis): a 3x3 stem conv of 16 channels, three groups of
    ``(depth - 4) / 6`` pre-activation basic blocks of ``16k, 32k, 64k`` channels (strides 1, 2, 2),
    global average pooling and a Dense classifier. ``depth=28, widen=10`` is WRN-28-10;
    ``depth=10, widen=1`` a test-sized one.

    Deviation: no batch norm (the train loop keeps no ``batch_stats``). To keep the residual stack
    trainable without it, each block's second convolution starts at zero (SkipInit / Fixup style),
    so every block is the identity (or its 1x1 projection) at initialisation.
    Layers, flat names in forward order: ``stem``, then per block (``g{group}b{block}_...``) ``_shortcut``
    (a 1x1 projection, only where the shape changes), ``_conv1``, ``_conv2``; then ``fc``.
    """

    num_classes: int = 100
    depth: int = 28
    widen: int = 10

    def _blocks(self):
        """``(prefix, in_channels, out_channels, stride)`` of every block."""
        if (self.depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4, got {self.depth}.")
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
        names = ["stem"]
        for prefix, in_channels, out_channels, stride in self._blocks():
            if in_channels != out_channels or stride != 1:
                names.append(f"{prefix}_shortcut")
            names += [f"{prefix}_conv1", f"{prefix}_conv2"]
        return tuple(names) + ("fc",)

    def _conv(self, name, h, features, kernel, stride=1, **kwargs):
        h = capture_layer_input(self, name, h)
        return nn.Conv(features, (kernel, kernel), strides=stride, padding="SAME", name=name, **kwargs)(h)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = self._conv("stem", x, 16, 3)
        for prefix, in_channels, out_channels, stride in self._blocks():
            h = nn.relu(x)
            shortcut = x
            if in_channels != out_channels or stride != 1:
                shortcut = self._conv(f"{prefix}_shortcut", h, out_channels, 1, stride)
            h = nn.relu(self._conv(f"{prefix}_conv1", h, out_channels, 3, stride))
            h = self._conv(f"{prefix}_conv2", h, out_channels, 3, kernel_init=nn.initializers.zeros)
            x = shortcut + h
        x = jnp.mean(nn.relu(x), axis=(1, 2))
        x = capture_layer_input(self, "fc", x)
        return nn.Dense(self.num_classes, name="fc")(x)
