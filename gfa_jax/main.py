"""Command line: ``python -m gfa_jax.main --config configs/<name>.py [--workdir DIR] [--config.a.b=v]``.

Trains every seed of the config, evaluating and checkpointing each epoch, then attacks the result
(``config.robustness``; report in ``<workdir>/robustness/``). Started again with the same command it
resumes from the last checkpoint in the workdir, and the evaluation from its last finished attack.
"""
from __future__ import annotations

import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/<name>.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory; default runs/<config.name>.")


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from gfa_jax import train  # after flag parsing: keeps `--help` fast

    config = _CONFIG.value
    workdir = _WORKDIR.value or f"runs/{config.name}"
    logging.info("Config:\n%s", config)
    summary = train.train_and_evaluate(config, workdir)
    print(json.dumps(summary, indent=2))
    if config.robustness.enabled:
        from gfa_jax import robustness

        outdir = f"{workdir}/robustness"
        robustness.evaluate_runs([workdir], outdir, config.robustness)
        print(open(f"{outdir}/table.md").read())


def run() -> None:
    flags.mark_flags_as_required(["config"])
    app.run(main)


if __name__ == "__main__":
    sys.exit(run())
