"""3Conv2FC on MNIST with layer-wise adversarial training: the rows of Tables V-VII.

    python -m gfa_jax.main --config configs/mnist_3conv2fc_layerwise.py:all_o --workdir runs/mnist_3conv2fc_all_o

Rows: ``standard`` (DNN), ``adv_input``, ``conv2``/``conv3`` (Table V), ``conv2_3`` (= Conv-o),
``conv2_3_fc1``, ``all_o`` (= Conv-2&3+FC-1&2, Table VI; Table VII's All-o has the same numbers, so
the paper's "input layer" that All-o leaves out is ``conv1``), ``conv_w`` and ``all_w`` (Table VII,
with adversarial inputs). Settings: see ``gfa_jax/paper_configs.py``.
"""
from gfa_jax.paper_configs import layerwise_paper_config

PLACEMENTS = {
    "conv2": (("conv2",), False),
    "conv3": (("conv3",), False),
    "conv2_3": (("conv2", "conv3"), False),
    "conv2_3_fc1": (("conv2", "conv3", "fc1"), False),
    "all_o": (("all", "!conv1"), False),
    "conv_w": (("conv2", "conv3"), True),
    "all_w": (("all", "!conv1"), True),
}


def get_config(arg: str = "all_o"):
    return layerwise_paper_config(name="mnist_3conv2fc", data="mnist", model="mnist_3conv2fc",
                                  placements=PLACEMENTS, arg=arg)
