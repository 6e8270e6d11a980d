"""DeepDefense DEEP on CIFAR-10: the GFA weight's scale x its warm-up, swept inside one program.

On CIFAR-10 no constant GFA weight reached the paper's Table 1 GFA without collapsing accuracy (0.03
barely moves GFA; 0.05 and 0.1 raise it while accuracy falls to chance: gfa_jax/paper_configs.py).
This sweep asks whether a warm-up of the weight lets a larger one train. It is one run: the DEEP
config with ``config.sweep.axes`` (3 scales of the weight 0.03 x 2 warm-ups x 5 seeds = 30 members
through one compiled step), so its summary, tables and figures are per setting.

    python -m gfa_jax.launch configs/sweeps/cifar_deep_gfa_weight.py --executor=slurm --slurm.gpus_per_job=1
    python -m gfa_jax.launch configs/sweeps/cifar_deep_gfa_weight.py:cpu --executor=local \\
        --set=data.data_dir=PATH/cifar10-jpg.tar.gz

arg ``cpu``: what fits a 2-core CPU: 4,000 training images from the JPEG archive, 1,000 test, 3
epochs of 31 steps, the warm-up over the first 2 epochs, no robustness report.
"""
import json

from gfa_jax.sweeps.sweep_file import Run

SCALES = [1.0, 2.0, 4.0]  # times the DEEP weight 0.03: 0.03, 0.06, 0.12
FULL = {"sweep.axes": json.dumps({"gfa.beta_scale": SCALES, "gfa.warmup_steps": [0, 3900]})}  # 10 of 30 epochs
CPU = {"sweep.axes": json.dumps({"gfa.beta_scale": SCALES, "gfa.warmup_steps": [0, 62]}),
       "data.source": "image_folder", "data.train_size": 4000, "data.test_size": 1000,
       "eval.train_samples": 1000, "num_epochs": 3, "robustness.enabled": False}


def get_sweep(arg=None):
    if arg not in (None, "", "cpu"):
        raise ValueError(f"Unknown arg {arg!r}; use cpu or nothing.")
    return [Run("cifar_deep.py", overrides=CPU if arg == "cpu" else FULL)]
