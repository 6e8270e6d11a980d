"""Tables and figures from robustness rows (see :mod:`gfa_jax.evaluation.robustness`).

- ``results.csv``: every row (run, seed, attack, eps, accuracy, mse, l2, linf, ...).
- ``table.md``: the layout of Tables 2 and 6 of DeepDefense: one row per attack, per strategy the
  perturbation intensity (MSE, "Intensive") and the accuracy under attack, mean +/- std over seeds,
  at the configured table eps (minimum-norm attacks: intensity of the successful perturbations).
- ``table_worst_case.md``: the layout of Tables II-IX of the layer-wise paper: one row per run,
  clean and per-attack top-1 accuracy and the worst case over attacks, mean +/- std over seeds.
- With the robustness audit (``audits``: run label -> seed -> :class:`~gfa_jax.evaluation.audit.AuditReport`),
  ``table.md`` gains the rows "audited worst case" and "audit verdict" and a paragraph saying which
  numbers are not to be trusted and why; ``table_worst_case.md`` the columns "Audited worst case"
  and "Audit".
- ``figures/accuracy_vs_eps.png``: accuracy against eps per attack (Figures 4, 6, 10).
- ``figures/minimum_norm_intensity.png``: perturbation intensity per minimum-norm attack (Figure 11).
"""
from __future__ import annotations

import csv
import io
import pathlib
from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np

from gfa_jax import files
from gfa_jax.evaluation.audit import NOT_CONVERGED_GAP, AuditReport
from gfa_jax.evaluation.plotting import pyplot, save_figure
from gfa_jax.training import metrics

Audits = Mapping[str, Mapping[int, AuditReport]]  # run label -> seed -> audit report

CSV_FIELDS = ("run", "seed", "attack", "norm", "kind", "eps", "num_samples", "accuracy", "success_rate",
              "mse", "l2", "linf", "workdir")


def _mean_std(values) -> tuple[float, float]:
    stats = metrics.mean_std(values)
    return stats["mean"], stats["std"]


def table_eps(norm: str, robustness) -> float | None:
    return {"linf": robustness.table_eps_linf, "l2": robustness.table_eps_l2}.get(norm)


def rows_at_table_eps(rows: Sequence[dict], robustness) -> list[dict]:
    """Each bounded attack's rows at its table eps (the closest grid value); all minimum-norm rows."""
    selected = []
    by_attack = defaultdict(list)
    for row in rows:
        by_attack[row["attack"]].append(row)
    for attack_rows in by_attack.values():
        if attack_rows[0]["eps"] is None:
            selected += attack_rows
            continue
        target = table_eps(attack_rows[0]["norm"], robustness)
        grid = sorted({r["eps"] for r in attack_rows})
        chosen = min(grid, key=lambda e: abs(e - target))
        selected += [r for r in attack_rows if r["eps"] == chosen]
    return selected


def run_verdict(by_seed: Mapping[int, AuditReport]) -> str:
    """One table cell for a run's seeds: ``masking suspected`` (some seed has a masking flag),
    ``weak attacks`` (only attack flags: report the audited number) or ``trustworthy``; ``(k/n seeds)``
    when not every seed agrees."""
    n = len(by_seed)
    masking = [s for s, r in by_seed.items() if r.masking_flags]
    weak = [s for s, r in by_seed.items() if r.flags and not r.masking_flags]
    count = lambda seeds: "" if len(seeds) == n else f" ({len(seeds)}/{n} seeds)"
    if masking:
        return "masking suspected" + count(masking)
    if weak:
        return "weak attacks" + count(weak)
    return "trustworthy"


def audited_worst_case(by_seed: Mapping[int, AuditReport]) -> tuple[float, float]:
    """Mean and std over seeds of the audited worst-case accuracy, in %."""
    return _mean_std([100 * r.robust_accuracy for r in by_seed.values()])


def _audit_eps(audits: Audits) -> float:
    return next(iter(next(iter(audits.values())).values())).settings["eps"]


def markdown_table(rows: Sequence[dict], robustness, run_labels: Sequence[str], audits: Audits | None = None) -> str:
    """Tables 2/6 layout: attacks as rows, strategies as columns (Intensive | Accuracy %); with
    ``audits``, two more rows: the audited worst case (mean +/- std over seeds) and the verdict."""
    selected = rows_at_table_eps(rows, robustness)
    cells = defaultdict(list)
    for row in selected:
        cells[(row["attack"], row["run"])].append(row)
    attacks = list(dict.fromkeys(r["attack"] for r in selected))
    header = ["Attacker", "eps"] + [f"{label} Intensive" for label in run_labels] + [f"{label} Accuracy" for label in run_labels]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for attack in attacks:
        eps = cells[(attack, run_labels[0])][0]["eps"] if cells[(attack, run_labels[0])] else None
        intensity, accuracy, mean_accuracy = [], [], []
        for label in run_labels:
            group = cells[(attack, label)]
            if not group:
                intensity.append("-")
                accuracy.append("-")
                mean_accuracy.append(-1.0)
                continue
            m, s = _mean_std([r["mse"] for r in group])
            intensity.append(f"{m:.4f} ± {s:.4f}")
            m, s = _mean_std([100 * r["accuracy"] for r in group])
            accuracy.append(f"{m:.2f} ± {s:.2f}")
            mean_accuracy.append(m)
        best = int(np.argmax(mean_accuracy))
        accuracy[best] = f"**{accuracy[best]}**"
        eps_cell = "min-norm" if eps is None else f"{eps:g}"
        lines.append("| " + " | ".join([attack, eps_cell] + intensity + accuracy) + " |")
    if audits:
        dash = ["-"] * len(run_labels)
        worst = ["{:.2f} ± {:.2f}".format(*audited_worst_case(audits[label])) if label in audits else "-"
                 for label in run_labels]
        verdicts = [run_verdict(audits[label]) if label in audits else "-" for label in run_labels]
        eps_cell = f"{_audit_eps(audits):g}"
        lines.append("| " + " | ".join(["audited worst case", eps_cell] + dash + worst) + " |")
        lines.append("| " + " | ".join(["audit verdict", eps_cell] + dash + verdicts) + " |")
    return "\n".join(lines)


def worst_case_table(rows: Sequence[dict], robustness, run_labels: Sequence[str],
                     references: Mapping[str, Mapping[str, float]] | None = None,
                     audits: Audits | None = None) -> str:
    """Tables II-IX layout of the layer-wise paper: runs as rows; top-1 accuracy (%) on clean inputs
    (a bounded attack at eps 0, when the grid has it), under each attack at its table eps
    (minimum-norm attacks: 1 - success rate), and the worst case, ``min`` over the attacks per seed;
    each cell mean +/- std over seeds. ``references``: per run label, published accuracies (fractions)
    by column, printed as a "(paper)" row under that run's."""
    selected = rows_at_table_eps(rows, robustness)
    attacks = list(dict.fromkeys(r["attack"] for r in selected))
    per_seed = defaultdict(dict)  # (run, seed) -> {column: accuracy}
    for row in selected:
        per_seed[(row["run"], row["seed"])][row["attack"]] = row["accuracy"]
    for row in rows:
        if row["eps"] == 0.0:
            per_seed[(row["run"], row["seed"])].setdefault("Clean", row["accuracy"])
    clean = ["Clean"] if any("Clean" in cells for cells in per_seed.values()) else []
    header = ["Run"] + clean + attacks + ["Worst case"]
    audit_header = ["Audited worst case", "Audit"] if audits else []
    lines = ["| " + " | ".join(header + audit_header) + " |", "|" + "---|" * (len(header) + len(audit_header))]
    for label in run_labels:
        seeds = [cells for (run, _), cells in sorted(per_seed.items(), key=lambda item: str(item[0])) if run == label]
        for cells in seeds:
            cells["Worst case"] = min(cells[a] for a in attacks if a in cells)
        row_cells = []
        for column in header[1:]:
            values = [100 * cells[column] for cells in seeds if column in cells]
            row_cells.append("-" if not values else "{:.2f} ± {:.2f}".format(*_mean_std(values)))
        if audits:
            row_cells += (["{:.2f} ± {:.2f}".format(*audited_worst_case(audits[label])), run_verdict(audits[label])]
                          if label in audits else ["-", "-"])
        lines.append("| " + " | ".join([label] + row_cells) + " |")
        reference = (references or {}).get(label)
        if reference:
            paper_cells = [f"{100 * reference[c]:.2f}" if c in reference else "-" for c in header[1:]]
            paper_cells += ["-"] * len(audit_header)
            lines.append("| " + " | ".join([f"{label} (paper)"] + paper_cells) + " |")
    return "\n".join(lines)


def audit_paragraph(rows: Sequence[dict], robustness, run_labels: Sequence[str], audits: Audits) -> str:
    """In words, per run: the verdict, the flags that fired (masking or weak attacks), and which numbers
    are not to be trusted: the report's L-inf rows at the audit's eps more than ``NOT_CONVERGED_GAP``
    above the audited worst case, and the audit's own attacks it marks untrusted."""
    eps = _audit_eps(audits)
    budget = next(iter(next(iter(audits.values())).values())).settings["budget"]
    paper_rows = [r for r in rows if r["norm"] == "linf" and r["eps"] is not None and abs(r["eps"] - eps) < 1e-9]
    lines = [f"Robustness audit (L-inf eps {eps:g}, budget {budget}; details in audit.md / audit.json): "
             "\"masking suspected\" means an indicator of gradient masking fired, so even the audited worst case "
             "is only an upper bound; \"weak attacks\" means a plain attack did not converge, not a model defect: "
             "report the audited worst case.", ""]
    for label in run_labels:
        by_seed = audits.get(label)
        if not by_seed:
            continue
        mean, std = audited_worst_case(by_seed)
        n = len(by_seed)
        fired = defaultdict(list)
        for seed, report in by_seed.items():
            for name in report.flags:
                fired[name].append(seed)
        parts = [f"- **{label}**: {run_verdict(by_seed)}; audited worst case {mean:.2f} ± {std:.2f} % over {n} seeds."]
        if fired:
            kinds = {name: next(r.indicators[name].get("kind", "masking") for r in by_seed.values() if name in r.flags)
                     for name in fired}
            parts.append("Flags: " + "; ".join(f"{name} ({kinds[name]}, {len(seeds)}/{n} seeds)"
                                                for name, seeds in fired.items()) + ".")
        untrusted = []
        for attack in dict.fromkeys(r["attack"] for r in paper_rows):
            values = [100 * r["accuracy"] for r in paper_rows if r["attack"] == attack and r["run"] == label]
            if values and np.mean(values) - mean > 100 * NOT_CONVERGED_GAP:
                untrusted.append(f"{attack} ({np.mean(values):.2f} %, {np.mean(values) - mean:.1f} points above)")
        if untrusted:
            parts.append("Not to be trusted, above the audited worst case by more than "
                         f"{100 * NOT_CONVERGED_GAP:.0f} points: " + ", ".join(untrusted) + ".")
        audit_untrusted = defaultdict(list)
        for seed, report in by_seed.items():
            for attack in report.untrusted_attacks:
                audit_untrusted[attack].append(seed)
        if audit_untrusted:
            parts.append("The audit's own weaker attacks that overstate robustness (audit.md): "
                         + ", ".join(f"{a} ({len(seeds)}/{n} seeds)" for a, seeds in sorted(audit_untrusted.items())) + ".")
        if not fired and not untrusted:
            parts.append(f"Every attack row of the table is within {100 * NOT_CONVERGED_GAP:.0f} points of the audited "
                         "worst case.")
        lines.append(" ".join(parts))
    return "\n".join(lines)


def write_csv(rows: Sequence[dict], path: pathlib.Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text_atomic(path, buffer.getvalue())


def plot_accuracy_vs_eps(rows: Sequence[dict], run_labels: Sequence[str], path: pathlib.Path) -> None:
    plt = pyplot()

    bounded = [r for r in rows if r["eps"] is not None]
    attacks = list(dict.fromkeys(r["attack"] for r in bounded))
    if not attacks:
        return
    cols = min(4, len(attacks))
    fig_rows = -(-len(attacks) // cols)
    fig, axes = plt.subplots(fig_rows, cols, figsize=(4 * cols, 3.2 * fig_rows), squeeze=False)
    for ax, attack in zip(axes.flat, attacks):
        for label in run_labels:
            group = [r for r in bounded if r["attack"] == attack and r["run"] == label]
            grid = sorted({r["eps"] for r in group})
            stats = [_mean_std([100 * r["accuracy"] for r in group if r["eps"] == e]) for e in grid]
            mean = np.array([m for m, _ in stats])
            std = np.array([s for _, s in stats])
            ax.plot(grid, mean, marker="o", label=label)
            ax.fill_between(grid, mean - std, mean + std, alpha=0.2)
        ax.set_title(attack)
        ax.set_xlabel(f"eps ({group[0]['norm'] if group else ''})")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(attacks):]:
        ax.axis("off")
    axes.flat[0].legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_minimum_norm_intensity(rows: Sequence[dict], run_labels: Sequence[str], path: pathlib.Path) -> None:
    plt = pyplot()

    minimum_norm = [r for r in rows if r["eps"] is None]
    attacks = list(dict.fromkeys(r["attack"] for r in minimum_norm))
    if not attacks:
        return
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(attacks) * len(run_labels) / 2, 3.5))
    width = 0.8 / len(run_labels)
    for i, label in enumerate(run_labels):
        stats = [_mean_std([r["mse"] for r in minimum_norm if r["attack"] == a and r["run"] == label]) for a in attacks]
        ax.bar(np.arange(len(attacks)) + i * width, [m for m, _ in stats], width, yerr=[s for _, s in stats], label=label)
    ax.set_xticks(np.arange(len(attacks)) + width * (len(run_labels) - 1) / 2, attacks)
    ax.set_yscale("log")
    ax.set_ylabel("perturbation MSE (successful)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def write_report(rows: Sequence[dict], outdir: pathlib.Path, robustness, run_labels: Sequence[str],
                 references: Mapping[str, Mapping[str, float]] | None = None, audits: Audits | None = None) -> None:
    outdir = pathlib.Path(outdir)
    write_csv(rows, outdir / "results.csv")
    table = markdown_table(rows, robustness, run_labels, audits)
    if audits:
        table += "\n\n" + audit_paragraph(rows, robustness, run_labels, audits)
    files.write_text_atomic(outdir / "table.md", table + "\n")
    files.write_text_atomic(outdir / "table_worst_case.md",
                            worst_case_table(rows, robustness, run_labels, references, audits) + "\n")
    plot_accuracy_vs_eps(rows, run_labels, outdir / "figures" / "accuracy_vs_eps.png")
    plot_minimum_norm_intensity(rows, run_labels, outdir / "figures" / "minimum_norm_intensity.png")
