"""The CIFAR-10 CNN of DeepDefense (Table 3, Appendix A.1)."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from gfa_jax.models.layers import (
    capture_layer_input,
    conv_as_matmul,
    conv_general_dilated,
    dot_general,
    max_pool_2x2,
)


class PaperCNN(nn.Module):
    """conv 3->32 (3x3, same) - maxpool 2 - conv 32->32 - maxpool 2 - linear 2048->1000->600->10.

    Convolutions have biases, linear layers do not, matching Table 3's parameter counts
    (896 / 9,248 / 2,048,000 / 600,000 / 6,000). Hidden activations are ReLU: the paper does not
    name them, and ReLU is what the table's PyTorch summary implies for a CIFAR CNN of this shape.
    Layers, in order: ``conv1, conv2, fc1, fc2, fc3``; each one's input is captured
    (:func:`capture_layer_input`), so ``conv1``'s captured input is the image itself.
    """

    num_classes: int = 10
    conv_features: Sequence[int] = (32, 32)
    hidden_features: Sequence[int] = (1000, 600)
    activation: str = "relu"
    # True: 3x3 convolutions as im2col + matmul (same values; faster GFA steps at large batch on CPU,
    # see :func:`gfa_jax.models.layers.conv_as_matmul`).
    conv_as_matmul: bool = False
    # False: plain ``lax.conv_general_dilated`` and ``lax.dot_general`` (the reference formulation,
    # benchmarks' FLOP yardstick); True: :func:`gfa_jax.models.layers.conv_general_dilated` and
    # :func:`gfa_jax.models.layers.dot_general`, same values, XLA:CPU's fast paths.
    cpu_conv_rewrites: bool = True

    @property
    def layer_names(self) -> tuple[str, ...]:
        n_conv, n_hidden = len(self.conv_features), len(self.hidden_features)
        return tuple(f"conv{i + 1}" for i in range(n_conv)) + tuple(f"fc{i + 1}" for i in range(n_hidden + 1))

    def _convolution(self):
        if self.conv_as_matmul:
            return conv_as_matmul
        return conv_general_dilated if self.cpu_conv_rewrites else jax.lax.conv_general_dilated

    def _dot_general(self):
        return dot_general if self.cpu_conv_rewrites else jax.lax.dot_general

    def conv_output(self, h: jax.Array, index: int) -> jax.Array:
        """What follows conv layer ``index``'s activation, before pooling: nothing here; a hook for
        variants that add blocks there (:class:`gfa_jax.models.denoise.PaperCNNDenoise`)."""
        del index
        return h

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = getattr(nn, self.activation)
        names = iter(self.layer_names)
        for index, features in enumerate(self.conv_features):
            name = next(names)
            x = capture_layer_input(self, name, x)
            conv = nn.Conv(features, (3, 3), padding="SAME", name=name,
                           conv_general_dilated=self._convolution())
            x = max_pool_2x2(self.conv_output(act(conv(x)), index))
        x = x.reshape(x.shape[0], -1)
        for features in self.hidden_features:
            name = next(names)
            x = capture_layer_input(self, name, x)
            x = act(nn.Dense(features, use_bias=False, name=name, dot_general=self._dot_general())(x))
        name = next(names)
        x = capture_layer_input(self, name, x)
        return nn.Dense(self.num_classes, use_bias=False, name=name, dot_general=self._dot_general())(x)
