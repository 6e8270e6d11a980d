"""CIFAR-10 CNN (Table 3) with GFA on the first layer (FIRST), five seeds.

    python -m gfa_jax.main --config configs/cifar_first.py --workdir runs/cifar_first
"""
from gfa_jax.paper_configs import deepdefense_cifar


def get_config():
    return deepdefense_cifar("first")
