"""Tables 1 and 5 of DeepDefense from finished runs: clean accuracy and per-layer GFA, mean +/- std.

    python -m gfa_jax.gfa_table runs/fmnist_mlp_standard runs/fmnist_mlp_first runs/fmnist_mlp_deep

prints a Markdown table built from each workdir's ``summary.json``, with the paper's values (where
the paper gives them) on the row below each of ours.
"""
from __future__ import annotations

import json
import pathlib
import sys
from typing import Sequence

# The paper's reported GFA, (mean, std) per layer: Table 1 (CIFAR-10 CNN) and Table 5 (F-MNIST MLP).
PAPER_GFA = {
    ("paper_cnn", "standard"): {
        "train": [(-0.0003, 0.0009), (-0.0006, 0.0005), (0.0, 0.0006), (0.0, 0.0011), (0.0014, 0.0023)],
        "test": [(0.0029, 0.0003), (0.0004, 0.0004), (0.003, 0.0003), (0.0065, 0.0005), (0.0116, 0.0014)],
    },
    ("paper_cnn", "first"): {
        "train": [(0.9449, 0.0041), (0.4207, 0.027), (-0.0008, 0.0002), (-0.0104, 0.0045), (-0.0473, 0.0896)],
        "test": [(0.4734, 0.0112), (0.1955, 0.0166), (-0.0005, 0.0002), (-0.0059, 0.0027), (-0.0257, 0.0545)],
    },
    ("paper_cnn", "deep"): {
        "train": [(0.9262, 0.0039), (0.9034, 0.013), (0.9448, 0.0039), (-0.0077, 0.0025), (-0.0954, 0.0243)],
        "test": [(0.5409, 0.0396), (0.5173, 0.038), (0.5395, 0.042), (-0.005, 0.0022), (-0.0554, 0.01)],
    },
    ("paper_cnn", "adv"): {
        "train": [(0.0008, 0.0035), (-0.0079, 0.0081), (0.0004, 0.0013), (-0.0012, 0.0016), (0.0048, 0.0045)],
        "test": [(0.0009, 0.0014), (-0.0062, 0.0035), (0.001, 0.0004), (-0.0022, 0.0006), (-0.0019, 0.0019)],
    },
    ("paper_cnn", "gaie"): {
        "train": [(-0.103, 0.0207), (-0.0035, 0.0287), (-0.0006, 0.0011), (0.0052, 0.0031), (-0.078, 0.0906)],
        "test": [(-0.0262, 0.012), (0.0035, 0.0161), (0.0, 0.0007), (0.0037, 0.0018), (-0.0469, 0.0582)],
    },
    ("paper_mlp", "adv"): {
        "train": [(-0.0096, 0.0048), (-0.0146, 0.0043), (-0.0149, 0.0082)],
        "test": [(-0.0022, 0.0044), (-0.0115, 0.0043), (-0.0116, 0.0075)],
    },
    # Table 5's standard-MLP row is garbled in our copy of the paper (one value per split survives).
    ("paper_mlp", "first"): {
        "train": [(0.985, 0.0012), (-0.013, 0.001), (-0.0277, 0.0472)],
        "test": [(0.8417, 0.0049), (-0.0117, 0.0009), (-0.0232, 0.0442)],
    },
    ("paper_mlp", "deep"): {
        "train": [(0.9694, 0.0017), (0.9376, 0.0035), (0.7469, 0.0463)],
        "test": [(0.85, 0.005), (0.8468, 0.0051), (0.6946, 0.0439)],
    },
}
# The GAIE model's own alignment (Table 1, footnote 2), (mean, std) per split.
PAPER_GAIE = {"train": (0.9360, 0.0141), "test": (0.4516, 0.0278)}


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
        accuracy = summary.get("test_accuracy")
        accuracy_cell = _cell(100 * accuracy["mean"], 100 * accuracy["std"], 2) if accuracy else "-"
        paper = PAPER_GFA.get((summary["model"], summary["strategy"]), {})
        for split in ("train", "test"):
            if f"{split}_gfa" not in summary:
                continue
            gfa = summary[f"{split}_gfa"]
            cells = [_cell(gfa[n]["mean"], gfa[n]["std"]) for n in layers]
            lines.append("| " + " | ".join([summary["strategy"], split, str(summary["epochs"]),
                                             str(len(summary["seeds"])), accuracy_cell] + cells) + " |")
            if split in paper:
                paper_cells = [_cell(m, s) for m, s in paper[split]]
                lines.append("| " + " | ".join([f"{summary['strategy']} (paper)", split, "", "", ""] + paper_cells) + " |")
    return "\n".join(lines + _gaie_notes(summaries))


def _gaie_notes(summaries: Sequence[dict]) -> list[str]:
    """A line per run trained with GAIE: its alignment per split, beside the paper's."""
    notes = []
    for summary in summaries:
        cells = [f"{split} {_cell(summary[f'{split}_gaie']['mean'], summary[f'{split}_gaie']['std'])} "
                 f"(paper {_cell(*PAPER_GAIE[split])})" for split in ("train", "test") if f"{split}_gaie" in summary]
        if cells:
            notes.append(f"\nGAIE alignment of {summary.get('name', summary['strategy'])}: " + ", ".join(cells))
    return notes


def main(argv: Sequence[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    summaries = []
    for workdir in argv:
        path = pathlib.Path(workdir) / "summary.json"
        if not path.exists():
            raise SystemExit(f"{path} does not exist: has the run in {workdir} finished?")
        summaries.append(json.loads(path.read_text()))
    print(gfa_table(summaries))


if __name__ == "__main__":
    main(sys.argv[1:])
