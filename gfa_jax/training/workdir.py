"""A run's workdir: its layout, and the refusal to mix two configs in one.

Layout::

    config.json        the full config of the run (a restart with another config is refused)
    metrics.jsonl      one line per (epoch, seed, split): accuracy, mse, per-layer GFA mean/std
    summary.json       mean +/- std over seeds of the last epoch (Tables 1 and 5 of the paper)
    checkpoints/<epoch>/  Orbax checkpoints of the stacked train state

Every file is written atomically (:mod:`gfa_jax.files`), so a killed run never leaves half a file.
"""
from __future__ import annotations

import json
import pathlib
from typing import NamedTuple

from gfa_jax import config as config_lib
from gfa_jax.files import write_json


class RunDir(NamedTuple):
    root: pathlib.Path
    config: pathlib.Path
    metrics: pathlib.Path
    summary: pathlib.Path
    checkpoints: pathlib.Path


def prepare_workdir(workdir: str, config) -> RunDir:
    """Create the workdir, or check that the run already in it was started with the same config."""
    root = pathlib.Path(workdir).expanduser().resolve()
    run = RunDir(root, root / "config.json", root / "metrics.jsonl", root / "summary.json", root / "checkpoints")
    config_json = json.loads(config.to_json_best_effort(sort_keys=True))
    if run.config.exists():
        saved = config_lib.upgrade_legacy(json.loads(run.config.read_text()))
        changed = config_lib.differences(saved, config_json)
        if changed:
            raise ValueError(
                f"{root} holds a run with a different config:\n  " + "\n  ".join(changed)
                + "\nResume it with the same config, or pass a new --workdir."
            )
    else:
        write_json(run.config, config_json)
    return run
