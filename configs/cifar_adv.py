"""CIFAR-10 CNN (Table 3) with PGD adversarial training (ADV of Tables 1-2), five seeds.

    python -m gfa_jax.main --config configs/cifar_adv.py --workdir runs/cifar_adv

Half of every batch is replaced by PGD adversarials (L-inf 8/255 on [0, 1] images, i.e. 16/255 on
our [-1, 1] inputs, 10 steps of eps/4, random start) of the current model, attacking the MSE it is
trained on; see gfa_jax.defenses.adversarial_training. The paper gives no ADV settings: these are Madry et
al.'s CIFAR-10 budget with a 50/50 clean/adversarial mix. Each step adds 10 forward-backward
passes (the attack) on half the batch.
"""
from gfa_jax.paper_configs import deepdefense_cifar


def get_config():
    config = deepdefense_cifar("standard")
    config.name = "cifar_adv"
    config.strategy = "adv"
    config.adversarial.enabled = True
    config.adversarial.attack = "pgd"
    config.adversarial.eps = 2 * 8 / 255
    config.adversarial.steps = 10
    config.adversarial.mix_ratio = 0.5
    return config
