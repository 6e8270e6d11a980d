"""Command line: Tables 1 and 5 of DeepDefense from finished runs.

    python -m gfa_jax.gfa_table runs/fmnist_mlp_standard runs/fmnist_mlp_first runs/fmnist_mlp_deep

prints clean accuracy and per-layer GFA (mean +/- std over seeds) from each workdir's
``summary.json``, the paper's values on the row below each of ours
(:mod:`gfa_jax.evaluation.gfa_table`).
"""
from __future__ import annotations

import json
import pathlib
import sys
from typing import Sequence

from gfa_jax.evaluation.gfa_table import gfa_table


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    summaries = []
    for workdir in argv:
        path = pathlib.Path(workdir).expanduser().resolve() / "summary.json"
        if not path.exists():
            print(f"{path} does not exist: has the run in {workdir} finished?", file=sys.stderr)
            return 1
        summaries.append(json.loads(path.read_text()))
    print(gfa_table(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
