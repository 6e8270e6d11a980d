"""The Table 1/5 report is built from summaries, with the paper's rows beside ours."""
import pytest

from gfa_jax.evaluation.gfa_table import gfa_table


def _summary(strategy, gfa_fc1):
    layers = ["fc1", "fc2", "fc3"]
    gfa = {n: {"mean": gfa_fc1 if n == "fc1" else 0.0, "std": 0.01} for n in layers}
    return {"model": "paper_mlp", "strategy": strategy, "layers": layers, "epochs": 3, "seeds": [0, 1],
            "test_accuracy": {"mean": 0.8512, "std": 0.0031}, "train_gfa": gfa, "test_gfa": gfa}


def test_table_has_our_rows_and_the_papers():
    table = gfa_table([_summary("standard", 0.001), _summary("deep", 0.9)]).splitlines()
    assert table[0].startswith("| strategy | data | epochs | seeds | clean test accuracy | GFA fc1 |")
    assert "| deep | train | 3 | 2 | 85.12 ± 0.31 | 0.9000 ± 0.0100 |" in "\n".join(table)
    assert any(line.startswith("| deep (paper) | train |") and "0.9694 ± 0.0017" in line for line in table)
    assert not any(line.startswith("| standard (paper)") for line in table)


def test_table_refuses_mixed_models():
    other = _summary("deep", 0.9) | {"layers": ["conv1"]}
    with pytest.raises(ValueError, match="same model"):
        gfa_table([_summary("standard", 0.0), other])
