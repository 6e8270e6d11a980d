"""A tiny training config shared by the tests (the paper MLP on the tiny IDX data of conftest.py), and
the repository's config files loaded by path, as ``config_flags`` loads them."""
import importlib.util
import pathlib

from gfa_jax import config as gfa_config

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"


def load_config_module(name: str):
    """``configs/<name>.py`` as a module, loaded from its file (configs are files, not a package)."""
    spec = importlib.util.spec_from_file_location(f"configs_{name}", CONFIG_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
