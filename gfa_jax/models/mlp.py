"""The Fashion-MNIST MLP of DeepDefense (Table 4, Appendix B.1)."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from gfa_jax.models.layers import capture_layer_input


class PaperMLP(nn.Module):
    """784 -> 600 -> 300 -> 10, tanh hidden activations, no biases (470,400 / 180,000 / 3,000).

    Layers ``fc1, fc2, fc3``; each one's input is captured, so ``fc1``'s is the flattened image.
    """

    num_classes: int = 10
    hidden_features: Sequence[int] = (600, 300)
    activation: str = "tanh"

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(f"fc{i + 1}" for i in range(len(self.hidden_features) + 1))

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = getattr(nn, self.activation)
        x = x.reshape(x.shape[0], -1)
        *hidden_names, output_name = self.layer_names
        for name, features in zip(hidden_names, self.hidden_features):
            x = capture_layer_input(self, name, x)
            x = act(nn.Dense(features, use_bias=False, name=name)(x))
        x = capture_layer_input(self, output_name, x)
        return nn.Dense(self.num_classes, use_bias=False, name=output_name)(x)
