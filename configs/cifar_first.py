"""CIFAR-10 CNN (Table 3) with GFA on the first layer (FIRST), five seeds.

    python -m gfa_jax.main --config configs/cifar_first.py --workdir runs/cifar_first
"""
from configs import cifar_standard


def get_config():
    return cifar_standard.get_config("first")
