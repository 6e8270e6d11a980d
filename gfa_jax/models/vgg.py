"""VGG16 for CIFAR-10 (layer-wise adversarial training paper, Table VIII), without batch norm."""
from __future__ import annotations

import flax.linen as nn
import jax

from gfa_jax.models.layers import capture_layer_input, max_pool_2x2

# Output channels of the 13 convolutions; "M" is a 2x2 max pool (32 -> 1 spatially).
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """13 3x3 convolutions (ReLU) in five pooled stages, then Dense 512 - 512 - classes.

    The CIFAR form of VGG16 (1x1x512 features after the fifth pool, two hidden Dense layers of 512
    instead of ImageNet's 4096). Deviation: no batch norm, because the train loop keeps no
    ``batch_stats``; the paper does not say whether it used it. ``width`` scales every channel
    count (``width=1/16`` is a test-sized VGG16 with the same 16 layers).
    Layers: ``conv1..conv13, fc1, fc2, fc3``.
    """

    num_classes: int = 10
    width: float = 1.0

    def _channels(self, count: int) -> int:
        return max(1, int(round(count * self.width)))

    @property
    def layer_names(self) -> tuple[str, ...]:
        convs = sum(1 for entry in VGG16_LAYOUT if entry != "M")
        return tuple(f"conv{i + 1}" for i in range(convs)) + ("fc1", "fc2", "fc3")

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        names = iter(self.layer_names)
        for entry in VGG16_LAYOUT:
            if entry == "M":
                x = max_pool_2x2(x)
                continue
            name = next(names)
            x = capture_layer_input(self, name, x)
            x = nn.relu(nn.Conv(self._channels(entry), (3, 3), padding="SAME", name=name)(x))
        x = x.reshape(x.shape[0], -1)
        for features in (self._channels(512), self._channels(512)):
            name = next(names)
            x = capture_layer_input(self, name, x)
            x = nn.relu(nn.Dense(features, name=name)(x))
        name = next(names)
        x = capture_layer_input(self, name, x)
        return nn.Dense(self.num_classes, name=name)(x)
