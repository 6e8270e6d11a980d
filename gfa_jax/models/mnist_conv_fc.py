"""3Conv2FC of the layer-wise adversarial training paper (Section IV-A-2): MNIST."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from gfa_jax.models.layers import capture_layer_input, conv_general_dilated, max_pool_2x2


class ThreeConvTwoFC(nn.Module):
    """conv 32 - pool - conv 64 - pool - conv 64 - fc 128 - fc 10 (3x3 SAME convs, ReLU, biases).

    "Three convolutional layers stacked over two fully connected layers"; the paper gives no widths
    (ours are the usual MNIST ones, ``conv_features`` / ``hidden_features`` shrink them for tests).
    Layers ``conv1, conv2, conv3, fc1, fc2`` are the paper's Conv-1..3 and FC-1..2 (Tables V-VII);
    28 -> 14 -> 7 spatially, the third convolution unpooled (7 is odd).
    """

    num_classes: int = 10
    conv_features: Sequence[int] = (32, 64, 64)
    hidden_features: int = 128

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(f"conv{i + 1}" for i in range(len(self.conv_features))) + ("fc1", "fc2")

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        names = iter(self.layer_names)
        for i, features in enumerate(self.conv_features):
            name = next(names)
            x = capture_layer_input(self, name, x)
            x = nn.relu(nn.Conv(features, (3, 3), padding="SAME", name=name,
                                   conv_general_dilated=conv_general_dilated)(x))
            if i < 2:
                x = max_pool_2x2(x)
        x = x.reshape(x.shape[0], -1)
        x = capture_layer_input(self, "fc1", x)
        x = nn.relu(nn.Dense(self.hidden_features, name=next(names))(x))
        x = capture_layer_input(self, "fc2", x)
        return nn.Dense(self.num_classes, name=next(names))(x)
