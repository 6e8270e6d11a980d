"""Command line: ``python -m gfa_jax.main --config configs/<name>.py [--workdir DIR] [--config.a.b=v]``.

Trains every seed of the config (under every setting of ``config.sweep.axes``, the in-program
sweep), evaluating and checkpointing each epoch, then attacks the result (``config.robustness``;
report in ``<workdir>/robustness/``) and, for a sweep, draws a figure per swept axis
(``<workdir>/figures/``). Started again with the same command it resumes from the last checkpoint
in the workdir, and the evaluation from its last finished attack.
Paths may be relative (to the current directory) or absolute; the config file's own imports do not
depend on the current directory.

Started as several processes (a SLURM step of several tasks, or ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``; :mod:`gfa_jax.training.distributed`), every process
trains its share of the members and process 0 alone prints and writes. The robustness report and
the sweep figures are process 0's alone, on its own devices; the others wait for them, then exit.
"""
from __future__ import annotations

import logging
import pathlib
import sys

from absl import app, flags
from ml_collections import config_flags

from gfa_jax import console
from gfa_jax.evaluation import after_training
from gfa_jax.training import distributed, metrics, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/<name>.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory; default runs/<config.name>.")

logger = logging.getLogger(__name__)


def resolve_paths(config) -> None:
    """Relative data paths in the config become absolute, once, here at the boundary."""
    if config.data.data_dir:
        config.data.data_dir = str(pathlib.Path(config.data.data_dir).expanduser().resolve())


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    distributed.initialize_from_environment()
    console.configure_logging()
    config = _CONFIG.value
    resolve_paths(config)
    workdir = pathlib.Path(_WORKDIR.value or f"runs/{config.name}").expanduser().resolve()
    logger.info("Config:\n%s", config)
    summary = train.train_and_evaluate(config, workdir)
    if distributed.is_writer():
        print(metrics.summary_line(summary))
        print(f"Summary, metrics and checkpoints: {workdir}")
    distributed.on_writer(report, workdir, config, summary)


def report(workdir: pathlib.Path, config, summary: dict) -> None:
    """The robustness report (``config.robustness``) and the figures of an in-program sweep, printed."""
    table, figures = after_training.report_run(workdir, config, summary)
    if table is not None:
        print(table)
    for path in figures:
        print(f"Sweep figure: {path}")


def run() -> None:
    console.run_app(main, required_flags=("config",))


if __name__ == "__main__":
    sys.exit(run())
