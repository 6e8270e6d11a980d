"""Fashion-MNIST MLP (Table 4) with GFA on layers 1-2 (DEEP), five seeds.

    python -m gfa_jax.main --config configs/fmnist_mlp_deep.py --workdir runs/fmnist_mlp_deep
"""
from configs import fmnist_mlp_standard


def get_config():
    return fmnist_mlp_standard.get_config("deep")
