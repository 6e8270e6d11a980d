"""DeepDefense Tables 1-2: the CIFAR-10 CNN under every strategy (five seeds each, per config).

    python -m gfa_jax.launch configs/sweeps/deepdefense_cifar.py --executor=slurm --slurm.gpus_per_job=1
    python -m gfa_jax.launch configs/sweeps/deepdefense_cifar.py:cpu --set=data.data_dir=PATH/cifar10-jpg.tar.gz

arg: comma-separated; ``cpu``: what ``launch/cifar_cpu.sh`` runs on a 2-core CPU (10,000 training
images from the JPEG archive given by ``--set=data.data_dir=...``, 2,000 test, 4 epochs, no per-run
robustness report: the script compares the strategies in one report afterwards); strategy names
keep only those (``cpu,standard,deep``).
"""
from gfa_jax.sweeps.sweep_file import strategy_runs

STRATEGIES = ("standard", "first", "deep", "adv", "gaie", "denoise")
CPU = {"data.source": "image_folder", "data.train_size": 10000, "data.test_size": 2000,
       "eval.train_samples": 2000, "num_epochs": 4, "robustness.enabled": False}


def get_sweep(arg=None):
    return strategy_runs(arg, STRATEGIES, "cifar_{}.py", CPU)
