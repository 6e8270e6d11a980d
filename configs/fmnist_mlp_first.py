"""Fashion-MNIST MLP (Table 4) with GFA on the first layer (FIRST), five seeds.

    python -m gfa_jax.main --config configs/fmnist_mlp_first.py --workdir runs/fmnist_mlp_first
"""
from gfa_jax.paper_configs import deepdefense_fmnist


def get_config():
    return deepdefense_fmnist("first")
