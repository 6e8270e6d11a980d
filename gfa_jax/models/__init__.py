"""Models by name: ``get_model(name, **kwargs)``; every model exposes ``layer_names`` in order."""
from __future__ import annotations

import functools

import flax.linen as nn

from gfa_jax.models.cnn import PaperCNN
from gfa_jax.models.denoise import PaperCNNDenoise
from gfa_jax.models.mlp import PaperMLP
from gfa_jax.models.mnist_conv_fc import ThreeConvTwoFC
from gfa_jax.models.mnist_fc import FourFC
from gfa_jax.models.resnet import ResNet
from gfa_jax.models.vgg import VGG16BN
from gfa_jax.models.wide_resnet import WideResNet

MODELS: dict[str, type[nn.Module]] = {
    "paper_cnn": PaperCNN,
    "paper_cnn_denoise": PaperCNNDenoise,
    "paper_mlp": PaperMLP,
    "mnist_4fc": FourFC,
    "mnist_3conv2fc": ThreeConvTwoFC,
    # Batch-norm CIFAR models: apply(..., train=True, mutable=["batch_stats"]) to train.
    "vgg16_bn": VGG16BN,
    "wrn_28_10": functools.partial(WideResNet, depth=28, widen=10),
    "resnet18": ResNet,
    # Narrow / shallow variants of the same families (same layer types), for tests and CPU runs.
    "vgg16_bn_tiny": functools.partial(VGG16BN, width=1 / 8),
    "wrn_10_1": functools.partial(WideResNet, depth=10, widen=1),
    "resnet18_tiny": functools.partial(ResNet, width=1 / 8),
}


def get_model(name: str, **kwargs) -> nn.Module:
    try:
        model_cls = MODELS[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.") from None
    return model_cls(**kwargs)


__all__ = ["MODELS", "PaperCNN", "PaperMLP", "FourFC", "ThreeConvTwoFC", "ResNet", "VGG16BN", "WideResNet", "get_model"]
