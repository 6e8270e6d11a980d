"""DeepDefense Tables 5-6: the Fashion-MNIST MLP under standard, FIRST, DEEP and ADV (five seeds each).

    python -m gfa_jax.launch configs/sweeps/deepdefense_fmnist.py --executor=slurm
    python -m gfa_jax.launch configs/sweeps/deepdefense_fmnist.py:cpu

Each run's own robustness report attacks the samples its seeds classify correctly; Table 6 compares
the strategies on the samples all of them classify correctly: ``python -m gfa_jax.evaluate`` over
the workdirs (``python -m gfa_jax.launch workdirs SWEEP``), as ``launch/fmnist_table6.sh`` does.
arg: comma-separated; ``cpu``: what that script trains on a 2-core CPU (20 epochs, the robustness
report left to the joint evaluation); strategy names keep only those.
"""
from gfa_jax.sweeps.sweep_file import strategy_runs

STRATEGIES = ("standard", "first", "deep", "adv")
CPU = {"robustness.enabled": False}


def get_sweep(arg=None):
    return strategy_runs(arg, STRATEGIES, "fmnist_mlp_{}.py", CPU)
