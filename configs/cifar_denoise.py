"""CIFAR-10 CNN (Table 3) with feature-denoising blocks in both conv layers (DENOISE of Tables 1-2).

    python -m gfa_jax.main --config configs/cifar_denoise.py --workdir runs/cifar_denoise

The model is paper_cnn_denoise (gfa_jax.models.denoise: Xie et al.'s embedded-Gaussian non-local
block + zero-initialised 1x1 conv, residual, after each conv's activation), trained like the
standard CNN: MSE only. Its layers are the CNN's, so every layer's GFA is recorded as for the others.
"""
from gfa_jax.paper_configs import deepdefense_cifar


def get_config():
    config = deepdefense_cifar("standard")
    config.name = "cifar_denoise"
    config.strategy = "denoise"
    config.model.name = "paper_cnn_denoise"
    return config
