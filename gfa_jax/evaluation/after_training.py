"""What follows a training run, wherever it was started (``gfa_jax.main``, a sweep job): its
robustness report (``config.robustness``) and, for an in-program sweep, a figure per swept axis."""
from __future__ import annotations

import pathlib

from gfa_jax.evaluation import robustness, sweep_figures

ROBUSTNESS_DIR = "robustness"  # <workdir>/robustness: results.jsonl, table.md, figures/
FIGURES_DIR = "figures"  # <workdir>/figures/sweep_<key>.png


def report_run(workdir: pathlib.Path, config, summary: dict) -> tuple[str | None, list[pathlib.Path]]:
    """Attack the run (if configured) and draw its sweep figures; returns (table.md text or None, figures)."""
    workdir = pathlib.Path(workdir)
    rows, table = [], None
    if config.robustness.enabled:
        outdir = workdir / ROBUSTNESS_DIR
        rows = robustness.evaluate_runs([workdir], outdir, config.robustness)
        table = (outdir / "table.md").read_text()
    figures = sweep_figures.write_sweep_figures(summary, workdir / FIGURES_DIR, rows, config.robustness)
    return table, figures
