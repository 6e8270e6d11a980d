"""Tables 1 and 5 of DeepDefense from finished runs: clean accuracy and per-layer GFA, mean +/- std.

A Markdown table built from each workdir's ``summary.json``, with the paper's values (where the paper
gives them, :mod:`gfa_jax.evaluation.paper_results.deepdefense`) on the row below each of ours.
Command line: ``python -m gfa_jax.gfa_table``.
"""
from __future__ import annotations

from typing import Sequence

from gfa_jax.evaluation.paper_results.deepdefense import PAPER_GAIE, PAPER_GFA
from gfa_jax.training import metrics

def _cell(mean: float, std: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def gfa_table(summaries: Sequence[dict]) -> str:
    """Markdown rows per (run, split): test accuracy and each layer's GFA, ours then the paper's."""
    layers = summaries[0]["layers"]
    header = ["strategy", "data", "epochs", "seeds", "clean test accuracy"] + [f"GFA {n}" for n in layers]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for summary in summaries:
        if summary["layers"] != layers:
            raise ValueError("All runs in one table must use the same model (same layers).")
        paper = PAPER_GFA.get((summary["model"], summary["strategy"]), {})
        settings = metrics.setting_summaries(summary)
        for index, (setting, statistics) in enumerate(settings):
            label = f"{summary['strategy']} [{setting}]" if setting else summary["strategy"]
            lines += _rows(label, summary, statistics, layers, paper if index == len(settings) - 1 else {})
    return "\n".join(lines + _gaie_notes(summaries))


def _rows(label: str, summary: dict, statistics: dict, layers, paper: dict) -> list[str]:
    """A row per split of one run (one setting of an in-program sweep), then the paper's row."""
    lines = []
    accuracy = statistics.get("test_accuracy")
    accuracy_cell = _cell(100 * accuracy["mean"], 100 * accuracy["std"], 2) if accuracy else "-"
    for split in ("train", "test"):
        if f"{split}_gfa" not in statistics:
            continue
        gfa = statistics[f"{split}_gfa"]
        cells = [_cell(gfa[n]["mean"], gfa[n]["std"]) for n in layers]
        lines.append("| " + " | ".join([label, split, str(summary["epochs"]), str(len(summary["seeds"])),
                                         accuracy_cell] + cells) + " |")
        if split in paper:
            paper_cells = [_cell(m, s) for m, s in paper[split]]
            lines.append("| " + " | ".join([f"{summary['strategy']} (paper)", split, "", "", ""] + paper_cells) + " |")
    return lines


def _gaie_notes(summaries: Sequence[dict]) -> list[str]:
    """A line per run trained with GAIE: its alignment per split, beside the paper's."""
    notes = []
    for summary in summaries:
        cells = [f"{split} {_cell(summary[f'{split}_gaie']['mean'], summary[f'{split}_gaie']['std'])} "
                 f"(paper {_cell(*PAPER_GAIE[split])})" for split in ("train", "test") if f"{split}_gaie" in summary]
        if cells:
            notes.append(f"\nGAIE alignment of {summary.get('name', summary['strategy'])}: " + ", ".join(cells))
    return notes
