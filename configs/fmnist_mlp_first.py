"""Fashion-MNIST MLP (Table 4) with GFA on the first layer (FIRST), five seeds.

    python -m gfa_jax.main --config configs/fmnist_mlp_first.py --workdir runs/fmnist_mlp_first
"""
from configs import fmnist_mlp_standard


def get_config():
    return fmnist_mlp_standard.get_config("first")
