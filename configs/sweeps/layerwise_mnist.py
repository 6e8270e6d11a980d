"""Layer-wise adversarial training, Tables I-VII: every row of 4FC and 3Conv2FC on MNIST.

    python -m gfa_jax.launch configs/sweeps/layerwise_mnist.py --executor=slurm
    python -m gfa_jax.launch configs/sweeps/layerwise_mnist.py:cpu --set=data.data_dir=MNIST_IDX_DIR

arg: comma-separated; ``cpu``: what ``launch/mnist_layerwise.sh`` trains on a 2-core CPU (IDX files
from ``--set=data.data_dir=...``, 4FC 10 epochs, 3Conv2FC 5 epochs, five seeds, the worst-case
tables left to the joint evaluation afterwards); ``4fc`` or ``3conv2fc`` keeps one model.
"""
from gfa_jax.sweeps.sweep_file import Run

ROWS = {
    "mnist_4fc_layerwise.py": ("standard", "adv_input", "layer2", "layer3", "layer4", "layers2_3", "layers3_4",
                               "all_o", "all_w", "layer2,fixed", "layers2_3,fixed"),
    "mnist_3conv2fc_layerwise.py": ("standard", "adv_input", "conv2", "conv3", "conv2_3", "conv2_3_fc1", "all_o",
                                    "conv_w", "all_w"),
}
MODELS = {"4fc": "mnist_4fc_layerwise.py", "3conv2fc": "mnist_3conv2fc_layerwise.py"}
CPU_EPOCHS = {"mnist_4fc_layerwise.py": 10, "mnist_3conv2fc_layerwise.py": 5}


def get_sweep(arg=None):
    options = [a for a in (arg or "").split(",") if a]
    unknown = set(options) - {"cpu", *MODELS}
    if unknown:
        raise ValueError(f"Unknown {sorted(unknown)}; use cpu and any of {sorted(MODELS)}.")
    files = [MODELS[m] for m in MODELS if m in options] or list(ROWS)
    runs = []
    for file in files:
        overrides = {}
        if "cpu" in options:
            overrides = {"data.source": "idx", "num_epochs": CPU_EPOCHS[file], "robustness.enabled": False}
        runs += [Run(file, row, overrides) for row in ROWS[file]]
    return runs
