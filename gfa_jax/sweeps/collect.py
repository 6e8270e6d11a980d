"""Gather a sweep's results into tables: every run's ``summary.json`` and robustness rows.

Writes, atomically, under ``<sweep_dir>/collect/``: ``summary.csv`` (a row per run: the run's
config, arg and overrides, then its summary flattened, ``test_accuracy.mean`` ...), ``summary.md``,
``robustness.csv`` (every robustness row of every run, with the run's name and overrides) and
``robustness.md`` (per run, attack and eps: accuracy under attack, mean +/- std over seeds). A run
that swept hyperparameters in-program has a row per setting, and its figures (one per swept axis:
accuracy, GFA, worst-case robust accuracy against the value) go to ``collect/figures/<run>/``.
"""
from __future__ import annotations

import csv
import io
import json
import pathlib
from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np

from gfa_jax import files
from gfa_jax.evaluation import sweep_figures
from gfa_jax.sweeps import job, ledger
from gfa_jax.training import metrics


def flatten(tree: Mapping, prefix: str = "") -> dict:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1, "c": "[1, 2]"}``."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


def csv_text(rows: Sequence[Mapping]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _mean_std(values) -> str:
    values = np.asarray(values, np.float64)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.4f} ± {std:.4f}"


def run_rows(manifest: Mapping) -> tuple[list[dict], list[dict]]:
    """``(summary rows, robustness rows)`` of the runs whose training finished."""
    summaries, attacks = [], []
    for run in manifest["runs"]:
        workdir = pathlib.Path(run["workdir"])
        summary_path = workdir / "summary.json"
        if not summary_path.exists():
            continue
        identity = {"run": run["name"], "config": run["config"], "arg": run["arg"] or "",
                    "overrides": json.dumps(run["overrides"], sort_keys=True)}
        summary = json.loads(summary_path.read_text())
        shared = {k: v for k, v in summary.items() if k not in ("settings", "axes")}
        for setting_name, statistics in metrics.setting_summaries(summary):
            row = {**identity, "setting": setting_name, **flatten({**shared, **statistics}), "workdir": str(workdir)}
            summaries.append(row)
        results = workdir / job.ROBUSTNESS_DIR / "results.jsonl"
        if results.exists():
            for line in results.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    attacks.append({**identity, **{k: v for k, v in row.items() if k != "run"}, "label": row.get("run")})
    return summaries, attacks


def summary_markdown(summaries: Sequence[Mapping]) -> str:
    rows = []
    for s in summaries:
        test = f"{s['test_accuracy.mean']:.4f} ± {s['test_accuracy.std']:.4f}" if "test_accuracy.mean" in s else ""
        train = f"{s['train_accuracy.mean']:.4f} ± {s['train_accuracy.std']:.4f}" if "train_accuracy.mean" in s else ""
        rows.append([s["run"], s.get("setting", ""), s.get("strategy", ""), s.get("epochs", ""),
                     len(json.loads(s.get("seeds", "[]"))), test, train])
    return markdown_table(["run", "setting", "strategy", "epochs", "seeds", "test accuracy", "train accuracy"], rows)


def robustness_markdown(attacks: Sequence[Mapping]) -> str:
    groups = defaultdict(list)
    for row in attacks:
        groups[(row["run"], row.get("label", ""), row["attack"], row.get("eps"))].append(row["accuracy"])
    rows = [[run, label, attack, "" if eps is None else f"{eps:g}", len(values), _mean_std(values)]
            for (run, label, attack, eps), values in groups.items()]
    return markdown_table(["run", "model", "attack", "eps", "seeds", "accuracy under attack"], rows)


def collect(sweep_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Write the tables; returns their paths. Runs not trained yet are left out (status says which)."""
    manifest = ledger.read_manifest(sweep_dir)
    summaries, attacks = run_rows(manifest)
    out = pathlib.Path(sweep_dir) / "collect"
    paths = {name: out / name for name in ("summary.csv", "summary.md", "robustness.csv", "robustness.md")}
    trained = len({row["run"] for row in summaries})  # a run of an in-program sweep has a row per setting
    title = f"Sweep {manifest['name']}: {trained} of {len(manifest['runs'])} runs trained.\n\n"
    files.write_text_atomic(paths["summary.csv"], csv_text(summaries) if summaries else "")
    files.write_text_atomic(paths["summary.md"], title + summary_markdown(summaries) + "\n")
    files.write_text_atomic(paths["robustness.csv"], csv_text(attacks) if attacks else "")
    files.write_text_atomic(paths["robustness.md"], title + robustness_markdown(attacks) + "\n")
    for run in manifest["runs"]:
        for path in _run_sweep_figures(pathlib.Path(run["workdir"]), out / "figures" / run["name"]):
            paths[f"figures/{run['name']}/{path.name}"] = path
    return paths


def _run_sweep_figures(workdir: pathlib.Path, outdir: pathlib.Path) -> list[pathlib.Path]:
    """The figures of a finished run's in-program sweep (none for a run without one)."""
    summary_path = workdir / "summary.json"
    if not summary_path.exists():
        return []
    summary = json.loads(summary_path.read_text())
    if "axes" not in summary:
        return []
    results = workdir / job.ROBUSTNESS_DIR / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()] if results.exists() else []
    config = json.loads((workdir / "config.json").read_text())
    return sweep_figures.write_sweep_figures(summary, outdir, rows, config.get("robustness"))
