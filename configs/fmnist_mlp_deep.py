"""Fashion-MNIST MLP (Table 4) with GFA on layers 1-2 (DEEP), five seeds.

    python -m gfa_jax.main --config configs/fmnist_mlp_deep.py --workdir runs/fmnist_mlp_deep
"""
from gfa_jax.paper_configs import deepdefense_fmnist


def get_config():
    return deepdefense_fmnist("deep")
