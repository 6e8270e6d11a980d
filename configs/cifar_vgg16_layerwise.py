"""VGG16 with batch norm on CIFAR-10 with layer-wise adversarial training: the rows of Table VIII.

    python -m gfa_jax.main --config configs/cifar_vgg16_layerwise.py:all_w --workdir runs/cifar_vgg16_all_w

Rows: ``standard`` (VGG16), ``adv_input``, ``conv_all`` (every convolution), ``all_o`` (every layer
but the input one, ``conv1``, as in Tables VI-VII) and ``all_w`` (``all_o`` with adversarial
inputs). ``cpu`` trains ``vgg16_bn_tiny`` (1/8 of the channels) on 5000 images. Settings:
:func:`gfa_jax.paper_configs.layerwise_paper_config` and
:func:`gfa_jax.paper_configs.cifar_paper_settings`; data from tensorflow-datasets (``cifar10``).
"""
from gfa_jax.paper_configs import cifar_paper_settings, layerwise_paper_config

PLACEMENTS = {
    "conv_all": (("conv",), False),
    "all_o": (("all", "!conv1"), False),
    "all_w": (("all", "!conv1"), True),
}


def get_config(arg: str = "all_w"):
    config = layerwise_paper_config(name="cifar_vgg16", data="cifar10", model="vgg16_bn", placements=PLACEMENTS, arg=arg,
                                    cpu_model="vgg16_bn_tiny", cpu_train_size=5000)
    config.eval.batch_size = 500
    return cifar_paper_settings(config)
