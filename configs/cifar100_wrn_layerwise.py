"""WideResNet-28-10 (batch norm) on CIFAR-100 with layer-wise adversarial training: Table IX.

    python -m gfa_jax.main --config configs/cifar100_wrn_layerwise.py:all_w --workdir runs/cifar100_wrn_all_w

Rows: ``standard`` (WRN-28-10), ``adv_input``, ``conv_all``, ``all_o`` (every layer but the stem
convolution) and ``all_w`` (``all_o`` with adversarial inputs). ``cpu`` trains ``wrn_10_1``
(depth 10, width 1) on 5000 images. Settings: :func:`gfa_jax.paper_configs.layerwise_paper_config`
and :func:`gfa_jax.paper_configs.cifar_paper_settings`; data from tensorflow-datasets
(``cifar100``). The carry holds dL/dy of every chosen output for a whole batch (about 2.6M floats
per sample for WRN-28-10: 1.3 GB per seed at batch 128).
"""
from gfa_jax.paper_configs import cifar_paper_settings, layerwise_paper_config

PLACEMENTS = {
    "conv_all": (("conv",), False),
    "all_o": (("all", "!stem"), False),
    "all_w": (("all", "!stem"), True),
}


def get_config(arg: str = "all_w"):
    config = layerwise_paper_config(name="cifar100_wrn", data="cifar100", model="wrn_28_10", placements=PLACEMENTS,
                                    arg=arg, cpu_model="wrn_10_1", cpu_train_size=5000)
    config.eval.batch_size = 250
    return cifar_paper_settings(config)
