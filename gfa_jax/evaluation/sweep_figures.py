"""A figure per swept axis of an in-program sweep: test accuracy, test GFA and robust accuracy
against the swept value, mean +/- std over seeds, a line per combination of the other axes.

Robust accuracy is the worst case over the report's attacks at its table eps (``table_eps_linf`` for
L-inf attacks, ``table_eps_l2`` for L2), per seed, then mean +/- std: the strongest attack that ran,
never one attack's own number.
"""
from __future__ import annotations

import pathlib
from collections import defaultdict
from typing import Callable, Mapping, Sequence

import numpy as np

from gfa_jax import hyperparameters
from gfa_jax.evaluation.plotting import pyplot, save_figure


def worst_case_accuracy(rows: Sequence[Mapping], setting: Mapping[str, float], norm: str, eps: float) -> list[float]:
    """Per seed, the lowest accuracy over the bounded attacks of ``norm`` at ``eps`` (empty if none ran)."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        if (row.get("norm") == norm and row.get("eps") is not None and np.isclose(row["eps"], eps)
                and all(row.get(f"hyper/{k}") == v for k, v in setting.items())):
            by_seed[row["seed"]].append(row["accuracy"])
    return [min(values) for _, values in sorted(by_seed.items())]


def _statistic(entry: Mapping, key: str, layer: str | None = None, scale: float = 1.0):
    """``(mean, std)`` of a summary statistic (of one layer for per-layer ones), or None if absent."""
    value = entry.get(key)
    if value and layer is not None:
        value = value.get(layer)
    return (scale * value["mean"], scale * value["std"]) if value else None


def _panels(summary: Mapping, rows: Sequence[Mapping], robustness: Mapping | None) -> list[tuple[str, Callable]]:
    """(title, settings entry -> (mean, std) or None) per panel."""
    panels = [("test accuracy (%)", lambda entry: _statistic(entry, "test_accuracy", scale=100))]
    regularised = [layer for i, (layer, beta) in enumerate(zip(summary["layers"], summary["beta"]))
                   if beta or f"gfa.beta.{i}" in summary["axes"]] or summary["layers"][:1]
    for layer in regularised:
        panels.append((f"test GFA {layer}", lambda entry, layer=layer: _statistic(entry, "test_gfa", layer)))
    if robustness and rows:
        for norm, eps in (("linf", robustness["table_eps_linf"]), ("l2", robustness["table_eps_l2"])):
            def robust(entry, norm=norm, eps=eps):
                values = 100 * np.asarray(worst_case_accuracy(rows, entry["setting"], norm, eps))
                return (values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0) if len(values) else None
            if any(robust(entry) for entry in summary["settings"]):
                panels.append((f"worst-case robust accuracy (%), {norm} eps {eps:g}", robust))
    return panels


def axis_figure(summary: Mapping, axis: str, path: pathlib.Path, rows: Sequence[Mapping] = (),
                robustness: Mapping | None = None) -> None:
    """The figure of one swept ``axis`` of ``summary`` (a swept run's summary.json)."""
    plt = pyplot()
    values = summary["axes"][axis]
    others = [key for key in summary["axes"] if key != axis]
    panels = _panels(summary, rows, robustness)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    lines: dict[str, dict[float, Mapping]] = defaultdict(dict)
    for entry in summary["settings"]:
        rest = hyperparameters.setting_name({k: entry["setting"][k] for k in others})
        lines[rest][entry["setting"][axis]] = entry
    positive = all(v > 0 for v in values) and max(values) / min(values) >= 10
    for ax, (title, read) in zip(axes.flat, panels):
        for rest, entries in lines.items():
            points = [(v, read(entries[v])) for v in values if v in entries and read(entries[v]) is not None]
            if not points:
                continue
            x = np.array([v for v, _ in points])
            mean, std = (np.array(c) for c in zip(*(p for _, p in points)))
            ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=rest or None)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(axis)
        if positive:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    if others:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{summary['name']}: {len(summary['seeds'])} seeds, {summary['epochs']} epochs", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def write_sweep_figures(summary: Mapping, outdir: pathlib.Path, rows: Sequence[Mapping] = (),
                        robustness: Mapping | None = None) -> list[pathlib.Path]:
    """``outdir/sweep_<axis>.png`` for every axis swept over more than one value."""
    paths = []
    for axis, values in summary.get("axes", {}).items():
        if len(values) > 1:
            path = pathlib.Path(outdir) / f"sweep_{axis}.png"
            axis_figure(summary, axis, path, rows, robustness)
            paths.append(path)
    return paths
