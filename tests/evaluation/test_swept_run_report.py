"""A run that swept a hyperparameter in-program is reported per setting: robustness rows and table,
resume, the GFA table, the summary line and a figure per swept axis."""
import json

import pytest
from tiny_configs import tiny_config

from gfa_jax.evaluation import robustness, sweep_figures
from gfa_jax.evaluation.gfa_table import gfa_table
from gfa_jax.training import metrics, train

LABELS = ["deep [gfa.beta_scale=0.5]", "deep [gfa.beta_scale=2]"]


@pytest.fixture(scope="module")
def swept_run(tiny_fashion_mnist, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("runs") / "swept"
    config = tiny_config(tiny_fashion_mnist, seeds=(0, 1), epochs=1)
    config.sweep.axes = '{"gfa.beta_scale": [0.5, 2.0]}'
    summary = train.train_and_evaluate(config, str(workdir))
    return workdir, summary, config


def _settings(config):
    settings = config.robustness
    settings.attacks, settings.eps_linf, settings.table_eps_linf = ("fgsm", "pgd"), (0.0, 0.1), 0.1
    settings.num_samples, settings.batch_size, settings.figures, settings.audit = 16, 16, False, False
    settings.attack_options.pgd.steps = 2
    return settings


def test_robustness_rows_and_table_are_per_setting_and_resume(swept_run, tmp_path, monkeypatch):
    workdir, _, config = swept_run
    settings = _settings(config)
    seen_programs = []
    original = robustness.evaluate_attack

    def recording(*args, **kwargs):
        seen_programs.append(args[-1])
        return original(*args, **kwargs)

    monkeypatch.setattr(robustness, "evaluate_attack", recording)
    rows = robustness.evaluate_runs([str(workdir)], str(tmp_path), settings)
    programs = seen_programs[0]
    assert sorted(name for _, name in programs) == ["fgsm", "pgd"]
    assert all(program._cache_size() == 1 for program in programs.values())  # one compile for both settings
    assert sorted({r["run"] for r in rows}) == LABELS
    assert {(r["run"], r["hyper/gfa.beta_scale"]) for r in rows} == {(LABELS[0], 0.5), (LABELS[1], 2.0)}
    assert len(rows) == 2 * 2 * 2 * 2  # settings x seeds x attacks x eps
    assert LABELS[1] + " Accuracy" in (tmp_path / "table.md").read_text()

    def no_attack(*args, **kwargs):
        raise AssertionError("a finished setting was attacked again")

    monkeypatch.setattr(robustness, "evaluate_attack", no_attack)
    assert robustness.evaluate_runs([str(workdir)], str(tmp_path), settings) == rows


def test_tables_summary_line_and_a_figure_per_axis(swept_run, tmp_path):
    workdir, summary, config = swept_run
    table = gfa_table([summary])
    assert "| deep [gfa.beta_scale=0.5] | test |" in table and "| deep [gfa.beta_scale=2] | test |" in table
    assert len(metrics.summary_line(summary).splitlines()) == 2
    rows = [{"run": LABELS[i], "seed": seed, "attack": attack, "norm": "linf", "eps": 0.1,
             "accuracy": accuracy, "hyper/gfa.beta_scale": scale}
            for i, scale in enumerate((0.5, 2.0)) for seed in (0, 1)
            for attack, accuracy in (("fgsm", 0.5 + 0.1 * i), ("pgd", 0.25 + 0.1 * seed))]
    assert sweep_figures.worst_case_accuracy(rows, {"gfa.beta_scale": 2.0}, "linf", 0.1) == [0.25, 0.35]
    paths = sweep_figures.write_sweep_figures(summary, tmp_path, rows, config.robustness)
    assert [p.name for p in paths] == ["sweep_gfa.beta_scale.png"] and paths[0].stat().st_size > 5000
    assert json.loads((workdir / "summary.json").read_text())["axes"] == {"gfa.beta_scale": [0.5, 2.0]}
