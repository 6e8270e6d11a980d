"""CIFAR-10 CNN (Table 3), standard training: MSE only, five seeds.

    python -m gfa_jax.main --config configs/cifar_standard.py --workdir runs/cifar_standard

Data comes from tensorflow-datasets (``cifar10``). Offline, point it at the CIFAR-10 JPEG folder or
its archive:  --config.data.source=image_folder --config.data.data_dir=PATH/cifar10-jpg.tar.gz
"""
from gfa_jax.config import base_config, strategy_beta

# GFA weight of the regularised layers in the FIRST / DEEP variants of this setup.
GFA_WEIGHT = 0.1


def get_config(strategy: str = "standard"):
    config = base_config()
    config.name = f"cifar_{strategy}"
    config.strategy = strategy
    config.data.name = "cifar10"
    config.data.source = "tfds"
    config.model.name = "paper_cnn"
    config.num_epochs = 30
    config.batch_size = 128
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.eval.batch_size = 500
    config.gfa.beta = strategy_beta(strategy, config.model.name, GFA_WEIGHT)
    return config
