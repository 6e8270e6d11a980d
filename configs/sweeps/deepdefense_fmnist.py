"""DeepDefense Tables 5-6: the Fashion-MNIST MLP under standard, FIRST, DEEP and ADV (five seeds each).

    python -m gfa_jax.launch configs/sweeps/deepdefense_fmnist.py --executor=slurm
    python -m gfa_jax.launch configs/sweeps/deepdefense_fmnist.py:cpu

Each run's own robustness report attacks the samples its seeds classify correctly; Table 6 compares
the strategies on the samples all of them classify correctly: ``python -m gfa_jax.evaluate`` over
the workdirs (``python -m gfa_jax.launch workdirs SWEEP``), as ``launch/fmnist_table6.sh`` does.
arg: comma-separated; ``cpu``: what that script trains on a 2-core CPU (20 epochs, the robustness
report left to the joint evaluation); strategy names keep only those.
"""
from gfa_jax.sweeps.sweep_file import Run

STRATEGIES = ("standard", "first", "deep", "adv")
CPU = {"robustness.enabled": False}


def get_sweep(arg=None):
    options = [a for a in (arg or "").split(",") if a]
    unknown = set(options) - {"cpu", *STRATEGIES}
    if unknown:
        raise ValueError(f"Unknown {sorted(unknown)}; use cpu and any of {STRATEGIES}.")
    strategies = [s for s in STRATEGIES if s in options] or STRATEGIES
    overrides = CPU if "cpu" in options else {}
    return [Run(f"fmnist_mlp_{strategy}.py", overrides=overrides) for strategy in strategies]
