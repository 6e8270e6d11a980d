"""CIFAR-10 CNN (Table 3) with the GAIE regulariser (GAIE of Tables 1-2), five seeds.

    python -m gfa_jax.main --config configs/cifar_gaie.py --workdir runs/cifar_gaie

Loss: MSE - GAIE_WEIGHT * mean cos(|grad_x MSE|, Sobel edges of x) (gfa_jax.defenses.gaie). GAIE is recorded
per epoch: as "gaie" of the train batches and as "gaie/mean" of the train / test evaluations in
metrics.jsonl, and as train_gaie / test_gaie in summary.json.
"""
from gfa_jax.paper_configs import deepdefense_cifar

# The paper tunes GAIE's weight until the train-set GAIE is about 0.93 (Table 1, footnote 2) and
# does not state it. UNTUNED starting value: GAIE is a cosine in [0, 1] like GFA, and its input
# gradient is GFA's first-layer gradient (the CNN's first layer input is the image), so we start
# from the weight the FIRST/DEEP runs use for GFA, gfa_jax.paper_configs.CIFAR_GFA_WEIGHT (0.03). Check
# train_gaie after a few epochs and raise the weight (e.g. 0.05, 0.1) until it nears 0.93.
# The paper tunes GAIE to ~0.93 on the train set (Table 1, footnote 2). One-seed probes, 2 epochs on
# 10,000 CIFAR-10 images (Adam 1e-3): weight 0.3 -> train GAIE 0.641 (accuracy 46.5 %), 1.0 -> 0.656
# (42.4 %), 3.0 -> 0.674 (33.5 %); an untrained CNN already scores ~0.63, since two non-negative
# maps have a large cosine. 0.93 was out of reach at that length; 1.0 is the largest weight that
# did not cost more than a few points of accuracy over 0.3.
GAIE_WEIGHT = 1.0


def get_config():
    config = deepdefense_cifar("standard")
    config.name = "cifar_gaie"
    config.strategy = "gaie"
    config.gaie.weight = GAIE_WEIGHT
    return config
