"""Fashion-MNIST MLP (Table 4) with PGD adversarial training (ADV of Tables 5-6), five seeds.

    python -m gfa_jax.main --config configs/fmnist_mlp_adv.py --workdir runs/fmnist_mlp_adv

Half of every batch is replaced by PGD adversarials (L-inf 0.1 on [0, 1] images, i.e. 0.2 on our
[-1, 1] inputs, 10 steps of eps/4, random start) of the current model, attacking the MSE it is
trained on; see gfa_jax.defenses.adversarial_training. The paper gives no ADV settings: 0.1 is the usual
Fashion-MNIST training budget (MNIST's 0.3 is too strong for it), with a 50/50 mix.
"""
from gfa_jax.paper_configs import deepdefense_fmnist


def get_config():
    config = deepdefense_fmnist("standard")
    config.name = "fmnist_mlp_adv"
    config.strategy = "adv"
    config.adversarial.enabled = True
    config.adversarial.attack = "pgd"
    config.adversarial.eps = 2 * 0.1
    config.adversarial.steps = 10
    config.adversarial.mix_ratio = 0.5
    return config
