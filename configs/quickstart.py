"""Quickstart: DEEP GFA on the Fashion-MNIST MLP, offline, a few minutes on a 2-core CPU.

    python -m gfa_jax.main --config configs/quickstart.py --workdir runs/quickstart

Reads Debian's Fashion-MNIST IDX files (``apt-get install dataset-fashion-mnist``), trains five seeds
together on 10,000 training images for 3 epochs, reports test accuracy and per-layer GFA, then a
short robustness report (FGSM, PGD, APGD, DeepFool, and the robustness audit's verdict) in
``runs/quickstart/robustness/``.
"""
from gfa_jax.paper_configs import deepdefense_fmnist


def get_config():
    config = deepdefense_fmnist("deep")
    config.name = "quickstart"
    config.data.source = "idx"
    config.data.train_size = 10000
    config.num_epochs = 3
    config.eval.train_samples = 5000
    # A short robustness report: four attacks on 500 commonly-correct test samples.
    config.robustness.attacks = ("fgsm", "pgd", "apgd", "deepfool")
    config.robustness.num_samples = 500
    config.robustness.attack_options.apgd.n_iter = 20
    # The robustness audit (quick budget) on the first 100 of them: on all 500 its five seeds would add
    # ~1.5 min on a 2-core CPU (measured: 51 s for two seeds of the MLP at 500 samples, 34 s at 100).
    config.robustness.audit_num_samples = 100
    return config
