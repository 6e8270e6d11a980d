"""CIFAR-10 CNN (Table 3), standard training: MSE only, five seeds.

    python -m gfa_jax.main --config configs/cifar_standard.py --workdir runs/cifar_standard

Data comes from tensorflow-datasets (``cifar10``). Offline, point it at the CIFAR-10 JPEG folder or
its archive:  --config.data.source=image_folder --config.data.data_dir=PATH/cifar10-jpg.tar.gz
"""
from gfa_jax.paper_configs import deepdefense_cifar


def get_config():
    return deepdefense_cifar("standard")
