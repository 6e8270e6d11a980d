"""Layer-wise adversarial training, Tables VIII-IX: VGG16 on CIFAR-10 and WRN-28-10 on CIFAR-100.

    python -m gfa_jax.launch configs/sweeps/layerwise_cifar.py --executor=slurm --slurm.gpus_per_job=1
    python -m gfa_jax.launch configs/sweeps/layerwise_cifar.py:cpu

arg: comma-separated; ``cpu``: the configs' own ``cpu`` rows (``vgg16_narrow`` / ``wrn10_1`` on
5,000 images, two epochs, one seed: no launch script ran these on the CPU yet); ``vgg16`` or ``wrn``
keeps one table. Data from tensorflow-datasets.
"""
from gfa_jax.sweeps.sweep_file import Run

ROWS = ("standard", "adv_input", "conv_all", "all_o", "all_w")
MODELS = {"vgg16": "cifar_vgg16_layerwise.py", "wrn": "cifar100_wrn_layerwise.py"}


def get_sweep(arg=None):
    options = [a for a in (arg or "").split(",") if a]
    unknown = set(options) - {"cpu", *MODELS}
    if unknown:
        raise ValueError(f"Unknown {sorted(unknown)}; use cpu and any of {sorted(MODELS)}.")
    files = [MODELS[m] for m in MODELS if m in options] or list(MODELS.values())
    suffix = ",cpu" if "cpu" in options else ""
    return [Run(file, row + suffix) for file in files for row in ROWS]
