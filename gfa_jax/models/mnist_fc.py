"""4FC of the layer-wise adversarial training paper (Section IV-A): MNIST, two hidden layers."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from gfa_jax.models.layers import capture_layer_input


class FourFC(nn.Module):
    """784 -> 512 -> 512 -> 10, ReLU, with biases: four layers of units, three Dense layers.

    The paper names the unit layers "FC Layer-1..4" (input, two hidden, output; Tables II-IV), so
    its "FC Layer-k" perturbation is on the output of Dense ``fc{k-1}``. It gives no widths; 512 is
    our choice (``hidden_features`` shrinks it for tests). ReLU as in "we used it in all our
    experiments" (Section III-C); biases as in eq. 5.
    """

    num_classes: int = 10
    hidden_features: Sequence[int] = (512, 512)

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(f"fc{i + 1}" for i in range(len(self.hidden_features) + 1))

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        *hidden_names, output_name = self.layer_names
        for name, features in zip(hidden_names, self.hidden_features):
            x = capture_layer_input(self, name, x)
            x = nn.relu(nn.Dense(features, name=name)(x))
        x = capture_layer_input(self, output_name, x)
        return nn.Dense(self.num_classes, name=output_name)(x)
