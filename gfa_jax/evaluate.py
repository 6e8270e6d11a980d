"""Command line: robustness report of one or several finished runs, side by side.

    python -m gfa_jax.evaluate --workdirs runs/fmnist_mlp_standard,runs/fmnist_mlp_first,runs/fmnist_mlp_deep \
        --outdir runs/fmnist_report [--robustness.num_samples=500] [--robustness.attacks=fgsm,pgd]

Attack settings come from ``--config``'s ``robustness`` section when given (e.g.
``--config configs/fmnist_mlp_standard.py``), else from the first run's; ``--robustness.<key>=value``
overrides them (``--robustness.attack_options.square.n_queries=1000``). Started again with the same
command, it resumes where it stopped. Paths may be relative or absolute.
"""
from __future__ import annotations

import json
import pathlib
import sys

from absl import app, flags
from ml_collections import config_flags

from gfa_jax import config as gfa_config
from gfa_jax import console
from gfa_jax.evaluation import robustness

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Training workdirs to compare (comma separated).")
_OUTDIR = flags.DEFINE_string("outdir", None, "Where results, table and figures go.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Optional experiment config whose `robustness` section sets the attacks (default: the first run's).")
_ROBUSTNESS = config_flags.DEFINE_config_dict("robustness", gfa_config.base_config().robustness, lock_config=True)


def robustness_settings(first_workdir: pathlib.Path):
    """The first run's (or ``--config``'s) robustness section with the ``--robustness.*`` overrides."""
    config_path = first_workdir / "config.json"
    if not config_path.exists():
        raise app.UsageError(f"{config_path} does not exist: --workdirs must name training workdirs.")
    settings = gfa_config.base_config().robustness
    if _CONFIG.value is not None:
        source = json.loads(_CONFIG.value.robustness.to_json_best_effort())
    else:
        source = gfa_config.upgrade_legacy(json.loads(config_path.read_text()))["robustness"]
    gfa_config.update_from_dict(settings, source)
    for name in flags.FLAGS:
        if name.startswith("robustness.") and flags.FLAGS[name].present:
            path = name.split(".")[1:]
            target, value = settings, _ROBUSTNESS.value
            for key in path[:-1]:
                target, value = target[key], value[key]
            target[path[-1]] = value[path[-1]]
    return settings


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    console.configure_logging()
    workdirs = [pathlib.Path(w).expanduser().resolve() for w in _WORKDIRS.value]
    outdir = pathlib.Path(_OUTDIR.value).expanduser().resolve()
    settings = robustness_settings(workdirs[0])
    robustness.evaluate_runs(workdirs, outdir, settings)
    print((outdir / "table.md").read_text())


def run() -> None:
    console.run_app(main, required_flags=("workdirs", "outdir"))


if __name__ == "__main__":
    sys.exit(run())
