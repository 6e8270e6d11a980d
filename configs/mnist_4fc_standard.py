"""4FC on MNIST, standard training (Table II's "DNN" row). The settings every config of the
layer-wise adversarial training paper shares: :func:`gfa_jax.paper_configs.layerwise_paper_config`.

    python -m gfa_jax.main --config configs/mnist_4fc_standard.py --workdir runs/mnist_4fc_standard
    python -m gfa_jax.main --config configs/mnist_4fc_standard.py:cpu ...   # a short CPU run
"""
from gfa_jax.paper_configs import layerwise_paper_config


def get_config(arg: str = ""):
    options = [o for o in arg.split(",") if o]
    return layerwise_paper_config(name="mnist_4fc", data="mnist", model="mnist_4fc", placements={},
                                  arg=",".join(["standard"] + options))
