"""Fashion-MNIST MLP (Table 4), standard training: MSE only, five seeds.

    python -m gfa_jax.main --config configs/fmnist_mlp_standard.py --workdir runs/fmnist_mlp_standard
"""
from gfa_jax.config import base_config, strategy_beta

# GFA weight of the regularised layers in the FIRST / DEEP variants of this setup.
GFA_WEIGHT = 0.03


def get_config(strategy: str = "standard"):
    config = base_config()
    config.name = f"fmnist_mlp_{strategy}"
    config.strategy = strategy
    config.data.name = "fashion_mnist"
    config.model.name = "paper_mlp"
    config.num_epochs = 20
    config.batch_size = 128
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.gfa.beta = strategy_beta(strategy, config.model.name, GFA_WEIGHT)
    return config
