"""Metrics of a run: JSON lines per (epoch, seed, split), the per-epoch console line, the summary."""
from __future__ import annotations

import json
import pathlib
from typing import Sequence

import numpy as np

from gfa_jax.files import write_text_atomic


def load_records(path: pathlib.Path, *, up_to_epoch: int) -> list[dict]:
    """The metrics lines of epochs ``<= up_to_epoch`` (later ones belong to an unsaved epoch)."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["epoch"] <= up_to_epoch]


def write_records(path: pathlib.Path, records: Sequence[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def epoch_records(epoch: int, seeds, train_metrics: dict, evaluations: dict, train_seconds: float) -> list[dict]:
    """Lines for one epoch: per seed, the running train-batch means and each evaluated split."""
    records = []
    for i, seed in enumerate(seeds):
        fit = {k: float(np.asarray(v)[i]) for k, v in train_metrics.items()}
        records.append({"epoch": epoch, "seed": seed, "split": "train_batches", "seconds": train_seconds, **fit})
        for split, result in evaluations.items():
            values = {k: float(np.asarray(v)[i]) for k, v in result.items()}
            records.append({"epoch": epoch, "seed": seed, "split": split, **values})
    return records


def mean_std(values) -> dict:
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def epoch_line(epoch: int, evaluations: dict) -> str:
    test = evaluations["test"]
    gfa = " ".join(
        f"{k.split('/')[1]}={np.mean(v):+.3f}" for k, v in test.items() if k.startswith("gfa/") and k.endswith("/mean")
    )
    return f"epoch {epoch}: test accuracy {np.mean(test['accuracy']):.4f} (mean over seeds), test GFA {gfa}"


def summarize(records: Sequence[dict], config, seeds, layer_names, dataset) -> dict:
    """Mean +/- std over seeds, at the last epoch, of accuracy and each layer's mean GFA per split."""
    last = max(r["epoch"] for r in records)
    summary = {
        "name": config.name,
        "strategy": config.strategy,
        "dataset": dataset.name,
        "data_source": dataset.source,
        "model": config.model.name,
        "epochs": last,
        "seeds": list(seeds),
        "layers": list(layer_names),
        "beta": list(config.gfa.beta),
    }
    for split in ("train", "test"):
        rows = [r for r in records if r["epoch"] == last and r["split"] == split]
        if not rows:
            continue
        summary[f"{split}_accuracy"] = mean_std([r["accuracy"] for r in rows])
        summary[f"{split}_gfa"] = {name: mean_std([r[f"gfa/{name}/mean"] for r in rows]) for name in layer_names}
        if "gaie/mean" in rows[0]:  # runs with the GAIE regulariser (gfa_jax.defenses.gaie)
            summary[f"{split}_gaie"] = mean_std([r["gaie/mean"] for r in rows])
    return summary


def summary_line(summary: dict) -> str:
    """The run's result on one line: test accuracy and each layer's test GFA, mean +/- std over seeds."""
    accuracy = summary.get("test_accuracy")
    parts = [f"{summary['name']}: {summary['epochs']} epochs, {len(summary['seeds'])} seeds"]
    if accuracy:
        parts.append(f"test accuracy {accuracy['mean']:.4f} ± {accuracy['std']:.4f}")
    gfa = summary.get("test_gfa", {})
    if gfa:
        parts.append("test GFA " + " ".join(f"{name}={v['mean']:+.3f}" for name, v in gfa.items()))
    return "; ".join(parts)
