"""A tiny training config shared by the tests: the paper MLP on the tiny IDX data of conftest.py."""
from gfa_jax import config as gfa_config


def tiny_config(data_dir, *, seeds=(0, 1, 2), strategy="deep", epochs=2):
    config = gfa_config.base_config()
    config.name = "test"
    config.strategy = strategy
    config.seeds = seeds
    config.num_epochs = epochs
    config.batch_size = 32
    config.log_every_steps = 2
    config.data.source = "idx"
    config.data.data_dir = str(data_dir)
    config.gfa.beta = gfa_config.strategy_beta(strategy, "paper_mlp", 0.1)
    config.eval.batch_size = 50
    config.eval.train_samples = 64
    config.robustness.enabled = False
    return config
