"""Models by name: ``get_model(name, **kwargs)``; every model exposes ``layer_names`` in order."""
from __future__ import annotations

import functools

import flax.linen as nn

from gfa_jax.models.cnn import PaperCNN
from gfa_jax.models.denoise import PaperCNNDenoise
from gfa_jax.models.mlp import PaperMLP
from gfa_jax.models.mnist_conv_fc import ThreeConvTwoFC
from gfa_jax.models.mnist_fc import FourFC
from gfa_jax.models.vgg import VGG16
from gfa_jax.models.wide_resnet import WideResNet

MODELS: dict[str, type[nn.Module]] = {
    "paper_cnn": PaperCNN,
    "paper_cnn_denoise": PaperCNNDenoise,
    "paper_mlp": PaperMLP,
    "mnist_4fc": FourFC,
    "mnist_3conv2fc": ThreeConvTwoFC,
    "vgg16": VGG16,
    "wrn28_10": WideResNet,
    # Narrow / shallow variants of the same families, for short CPU runs.
    "vgg16_narrow": functools.partial(VGG16, width=1 / 8),
    "wrn10_1": functools.partial(WideResNet, depth=10, widen=1),
}


def get_model(name: str, **kwargs) -> nn.Module:
    try:
        model_cls = MODELS[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.") from None
    return model_cls(**kwargs)


__all__ = ["MODELS", "PaperCNN", "PaperMLP", "FourFC", "ThreeConvTwoFC", "VGG16", "WideResNet", "get_model"]
