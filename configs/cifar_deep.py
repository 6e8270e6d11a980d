"""CIFAR-10 CNN (Table 3) with GFA on layers 1-3 (DEEP), five seeds.

    python -m gfa_jax.main --config configs/cifar_deep.py --workdir runs/cifar_deep
"""
from gfa_jax.paper_configs import deepdefense_cifar


def get_config():
    return deepdefense_cifar("deep")
