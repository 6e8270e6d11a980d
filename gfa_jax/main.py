"""Command line: ``python -m gfa_jax.main --config configs/<name>.py [--workdir DIR] [--config.a.b=v]``.

Trains every seed of the config, evaluating and checkpointing each epoch; started again with the
same command it resumes from the last checkpoint in the workdir.
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


def run() -> None:
    flags.mark_flags_as_required(["config"])
    app.run(main)


if __name__ == "__main__":
    sys.exit(run())
