"""Command line: robustness report of one or several finished runs, side by side.

    python -m gfa_jax.evaluate --workdirs runs/fmnist_mlp_standard,runs/fmnist_mlp_first,runs/fmnist_mlp_deep \
        --outdir runs/fmnist_report [--robustness.num_samples=500] [--robustness.attacks=fgsm,pgd]

Attack settings come from ``--config``'s ``robustness`` section when given (e.g.
``--config configs/fmnist_mlp_standard.py``), else from the first run's; ``--robustness.<key>=value``
overrides them. Started again with the same command, it resumes where it stopped.
"""
from __future__ import annotations

import json
import pathlib

from absl import app, flags
from ml_collections import config_flags

from gfa_jax import config as gfa_config

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Training workdirs to compare (comma separated).")
_OUTDIR = flags.DEFINE_string("outdir", None, "Where results, table and figures go.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Optional experiment config whose `robustness` section sets the attacks (default: the first run's).")
_ROBUSTNESS = config_flags.DEFINE_config_dict("robustness", gfa_config.base_config().robustness, lock_config=True)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from gfa_jax import robustness

    first = pathlib.Path(_WORKDIRS.value[0]) / "config.json"
    if not first.exists():
        raise app.UsageError(f"{first} does not exist: --workdirs must name training workdirs.")
    settings = gfa_config.base_config().robustness
    if _CONFIG.value is not None:
        settings.update(_CONFIG.value.robustness.to_dict())
    else:
        settings.update(json.loads(first.read_text()).get("robustness", {}))
    overridden = {name.split(".", 1)[1] for name in flags.FLAGS if name.startswith("robustness.")
                  and flags.FLAGS[name].present}
    for key in overridden:
        settings[key] = _ROBUSTNESS.value[key]
    robustness.evaluate_runs(_WORKDIRS.value, _OUTDIR.value, settings)
    print((pathlib.Path(_OUTDIR.value) / "table.md").read_text())


if __name__ == "__main__":
    flags.mark_flags_as_required(["workdirs", "outdir"])
    app.run(main)
