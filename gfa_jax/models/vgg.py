"""VGG16 with batch norm for CIFAR-10 (layer-wise adversarial training paper, Table VIII)."""
from __future__ import annotations

import flax.linen as nn
import jax

from gfa_jax.models.layers import batch_norm, capture_layer_input, conv_kernel_init, max_pool_2x2

# Output channels of the 13 convolutions; "M" is a 2x2 max pool (32 -> 1 spatially).
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16BN(nn.Module):
    """13 x (3x3 conv with bias - batch norm - ReLU) in five max-pooled stages, then one Dense.

    The CIFAR VGG16 of kuangliu/pytorch-cifar (``VGG('VGG16')``): 1x1x512 features after the fifth
    pool feed ``Linear(512, num_classes)``; 14,728,266 trainable parameters for 10 classes.
    ``width`` scales every channel count (``width=1/8``: a CPU-sized VGG16 with the same layers).
    Layers (inputs captured, :func:`capture_layer_input`): ``conv1..conv13, fc``; a convolution's
    input is the previous block's ReLU output (max-pooled where a pool follows).
    """

    num_classes: int = 10
    width: float = 1.0

    def _channels(self, count: int) -> int:
        return max(1, int(round(count * self.width)))

    @property
    def layer_names(self) -> tuple[str, ...]:
        convs = sum(1 for entry in VGG16_LAYOUT if entry != "M")
        return tuple(f"conv{i + 1}" for i in range(convs)) + ("fc",)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        names = iter(self.layer_names)
        for entry in VGG16_LAYOUT:
            if entry == "M":
                x = max_pool_2x2(x)
                continue
            name = next(names)
            x = capture_layer_input(self, name, x)
            x = nn.Conv(self._channels(entry), (3, 3), padding=1, kernel_init=conv_kernel_init, name=name)(x)
            x = nn.relu(batch_norm(train, f"{name}_bn")(x))
        x = x.reshape(x.shape[0], -1)
        name = next(names)
        x = capture_layer_input(self, name, x)
        return nn.Dense(self.num_classes, name=name)(x)
