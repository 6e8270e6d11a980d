"""Fashion-MNIST MLP (Table 4), standard training: MSE only, five seeds.

    python -m gfa_jax.main --config configs/fmnist_mlp_standard.py --workdir runs/fmnist_mlp_standard
"""
from gfa_jax.paper_configs import deepdefense_fmnist


def get_config():
    return deepdefense_fmnist("standard")
