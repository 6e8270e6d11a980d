"""Metrics of a run: JSON lines per (epoch, member, split), the per-epoch console line, the summary.

A member is a seed under one setting of an in-program sweep (:mod:`gfa_jax.hyperparameters`); its
lines carry the swept values as ``hyper/<key>``, and the summary gives mean +/- std over seeds per
setting.
"""
from __future__ import annotations

import json
import pathlib
from typing import Sequence

import numpy as np

from gfa_jax import hyperparameters
from gfa_jax.files import write_text_atomic

HYPER_PREFIX = "hyper/"


def load_records(path: pathlib.Path, *, up_to_epoch: int) -> list[dict]:
    """The metrics lines of epochs ``<= up_to_epoch`` (later ones belong to an unsaved epoch)."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["epoch"] <= up_to_epoch]


def write_records(path: pathlib.Path, records: Sequence[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def epoch_records(epoch: int, members: hyperparameters.Members, train_metrics: dict, evaluations: dict,
                  train_seconds: float) -> list[dict]:
    """Lines for one epoch: per member, the running train-batch means and each evaluated split."""
    records = []
    for i, seed in enumerate(members.seeds):
        member = {"epoch": epoch, "seed": seed, **{HYPER_PREFIX + k: v for k, v in members.settings[i].items()}}
        fit = {k: float(np.asarray(v)[i]) for k, v in train_metrics.items()}
        records.append({**member, "split": "train_batches", "seconds": train_seconds, **fit})
        for split, result in evaluations.items():
            values = {k: float(np.asarray(v)[i]) for k, v in result.items()}
            records.append({**member, "split": split, **values})
    return records


def record_setting(record: dict) -> dict[str, float]:
    """The swept values of a metrics line (``{}`` outside an in-program sweep)."""
    return {k[len(HYPER_PREFIX):]: v for k, v in record.items() if k.startswith(HYPER_PREFIX)}


def mean_std(values) -> dict:
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def epoch_line(epoch: int, evaluations: dict, members: hyperparameters.Members | None = None) -> str:
    """Test accuracy and GFA, mean over seeds; a line per setting under an in-program sweep."""
    test = evaluations["test"]
    groups = _setting_groups(members) if members is not None else {"": slice(None)}
    lines = []
    for name, index in groups.items():
        gfa = " ".join(f"{k.split('/')[1]}={np.mean(np.asarray(v)[index]):+.3f}" for k, v in test.items()
                       if k.startswith("gfa/") and k.endswith("/mean"))
        where = f" [{name}]" if name else ""
        lines.append(f"epoch {epoch}{where}: test accuracy {np.mean(np.asarray(test['accuracy'])[index]):.4f} "
                     f"(mean over seeds), test GFA {gfa}")
    return "\n".join(lines)


def _setting_groups(members: hyperparameters.Members) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, setting in enumerate(members.settings):
        groups.setdefault(hyperparameters.setting_name(setting), []).append(i)
    return groups


def summarize(records: Sequence[dict], config, axes: dict, layer_names, dataset) -> dict:
    """Mean +/- std over seeds, at the last epoch, of accuracy and each layer's mean GFA per split.

    Under an in-program sweep (``axes``) those statistics are per setting, in ``summary["settings"]``
    (each with its ``setting`` of swept values); without one they are top-level fields.
    """
    last = max(r["epoch"] for r in records)
    summary = {
        "name": config.name,
        "strategy": config.strategy,
        "dataset": dataset.name,
        "data_source": dataset.source,
        "model": config.model.name,
        "epochs": last,
        "seeds": [int(s) for s in config.seeds],
        "layers": list(layer_names),
        "beta": list(config.gfa.beta),
    }
    final = [r for r in records if r["epoch"] == last]
    if not axes:
        return {**summary, **_split_statistics(final, layer_names)}
    summary["axes"] = {key: list(values) for key, values in axes.items()}
    summary["settings"] = [
        {"setting": setting, **_split_statistics([r for r in final if record_setting(r) == setting], layer_names)}
        for setting in hyperparameters.settings(axes)
    ]
    return summary


def _split_statistics(rows: Sequence[dict], layer_names) -> dict:
    statistics = {}
    for split in ("train", "test"):
        split_rows = [r for r in rows if r["split"] == split]
        if not split_rows:
            continue
        statistics[f"{split}_accuracy"] = mean_std([r["accuracy"] for r in split_rows])
        statistics[f"{split}_gfa"] = {name: mean_std([r[f"gfa/{name}/mean"] for r in split_rows])
                                      for name in layer_names}
        if "gaie/mean" in split_rows[0]:  # runs with the GAIE regulariser (gfa_jax.defenses.gaie)
            statistics[f"{split}_gaie"] = mean_std([r["gaie/mean"] for r in split_rows])
    return statistics


def setting_summaries(summary: dict) -> list[tuple[str, dict]]:
    """``(setting name, statistics)`` per setting of a summary; one ``('', summary)`` without a sweep."""
    if "settings" not in summary:
        return [("", summary)]
    return [(hyperparameters.setting_name(entry["setting"]), entry) for entry in summary["settings"]]


def summary_line(summary: dict) -> str:
    """The run's result: test accuracy and each layer's test GFA, mean +/- std over seeds (a line per
    setting under an in-program sweep)."""
    lines = []
    for name, statistics in setting_summaries(summary):
        parts = [f"{summary['name']}{f' [{name}]' if name else ''}: {summary['epochs']} epochs, "
                 f"{len(summary['seeds'])} seeds"]
        accuracy = statistics.get("test_accuracy")
        if accuracy:
            parts.append(f"test accuracy {accuracy['mean']:.4f} ± {accuracy['std']:.4f}")
        gfa = statistics.get("test_gfa", {})
        if gfa:
            parts.append("test GFA " + " ".join(f"{layer}={v['mean']:+.3f}" for layer, v in gfa.items()))
        lines.append("; ".join(parts))
    return "\n".join(lines)
