"""4FC on MNIST with layer-wise adversarial training: the rows of Tables I-IV.

    python -m gfa_jax.main --config configs/mnist_4fc_layerwise.py:layers3_4 --workdir runs/mnist_4fc_layers3_4
    ... :layer2,fixed   (Table I's "one layer-f")   ... :all_w,cpu   (a short CPU run)

The paper numbers 4FC's unit layers 1-4 (input, two hidden, output), so "FC Layer-k" is the output
of Dense ``fc{k-1}``. Rows: ``standard`` (DNN), ``adv_input``, ``layer2``/``layer3``/``layer4``
(Table II), ``layers2_3``/``layers3_4`` (Table III), ``all_o`` (MLPo) and ``all_w`` (MLPw: with
adversarial inputs, Table IV). Settings: see ``gfa_jax/paper_configs.py``.
"""
from gfa_jax.paper_configs import layerwise_paper_config

PLACEMENTS = {
    "layer2": (("fc1",), False),
    "layer3": (("fc2",), False),
    "layer4": (("fc3",), False),
    "layers2_3": (("fc1", "fc2"), False),
    "layers3_4": (("fc2", "fc3"), False),
    "all_o": (("dense",), False),
    "all_w": (("dense",), True),
}


def get_config(arg: str = "layers3_4"):
    return layerwise_paper_config(name="mnist_4fc", data="mnist", model="mnist_4fc", placements=PLACEMENTS, arg=arg)
