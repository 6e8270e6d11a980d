"""The robustness report: one program per attack over seeds x eps, the paper's sample protocol,
rows / table / figures written, and a resumed evaluation that skips finished attacks."""
import json

import numpy as np
import pytest
from tiny_configs import tiny_config

from gfa_jax.evaluation import audit as audit_library
from gfa_jax.evaluation import audit_runs, robustness
from gfa_jax.training import train


@pytest.fixture(scope="module")
def two_runs(tiny_fashion_mnist, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    workdirs = []
    for strategy in ("standard", "deep"):
        config = tiny_config(tiny_fashion_mnist, seeds=(0, 1), strategy=strategy, epochs=2)
        train.train_and_evaluate(config, str(root / strategy))
        workdirs.append(str(root / strategy))
    return workdirs


def _settings(attacks=("fgsm", "pgd", "deepfool")):
    settings = tiny_config(".").robustness
    settings.attacks = attacks
    settings.eps_linf = (0.0, 0.1, 0.5)
    settings.table_eps_linf = 0.1
    settings.num_samples = 0
    settings.figures = False
    settings.batch_size = 32
    settings.attack_options.pgd.steps = 3
    settings.attack_options.deepfool.max_iter = 5
    settings.audit = False  # the audit's own test below turns it on
    return settings


def test_report_rows_table_and_figures(two_runs, tmp_path):
    settings = _settings()
    settings.figures = True
    rows = robustness.evaluate_runs(two_runs, str(tmp_path), settings)
    # 2 runs x 2 seeds x (2 bounded attacks x 3 eps + 1 minimum-norm attack)
    assert len(rows) == 2 * 2 * (2 * 3 + 1)
    for row in rows:
        if row["eps"] == 0.0:
            assert row["accuracy"] == 1.0  # common-correct samples, unperturbed
            assert row["mse"] == 0.0
        if row["eps"] is not None:
            assert row["linf"] <= row["eps"] + 1e-6
    fgsm_deep = sorted((r["eps"], r["accuracy"]) for r in rows if r["attack"] == "fgsm" and r["seed"] == 0
                       and r["run"] == "deep")
    assert fgsm_deep[-1][1] <= fgsm_deep[0][1]
    table = (tmp_path / "table.md").read_text().splitlines()
    assert table[0] == "| Attacker | eps | standard Intensive | deep Intensive | standard Accuracy | deep Accuracy |"
    assert [line.split(" | ")[0] for line in table[2:]] == ["| fgsm", "| pgd", "| deepfool"]
    assert (tmp_path / "results.csv").read_text().startswith("run,seed,attack,norm,kind,eps")
    for figure in ("accuracy_vs_eps.png", "minimum_norm_intensity.png", "adversarial_examples.png", "loss_landscape.png"):
        assert (tmp_path / "figures" / figure).stat().st_size > 1000


def test_only_commonly_correct_samples_are_attacked(two_runs):
    from gfa_jax import data

    dataset = data.load_dataset("fashion_mnist", source="idx", data_dir=json.load(
        open(f"{two_runs[0]}/config.json"))["data"]["data_dir"])
    runs = [robustness.load_run(w, 10, (28, 28, 1)) for w in two_runs]
    chosen = robustness.select_samples(runs, dataset.test_images, dataset.test_labels,
                                       protocol="common_correct", num_samples=0, batch_size=16)
    for run in runs:
        predictions = robustness.predict(run, dataset.test_images[chosen], 16)
        np.testing.assert_array_equal(predictions, np.broadcast_to(dataset.test_labels[chosen], predictions.shape))
    everything = robustness.select_samples(runs, dataset.test_images, dataset.test_labels,
                                           protocol="all", num_samples=10, batch_size=16)
    assert len(set(everything)) == 10 and set(everything) <= set(range(len(dataset.test_labels)))
    assert len(robustness.select_samples(runs, dataset.test_images, dataset.test_labels, protocol="all",
                                         num_samples=0, batch_size=16)) == len(dataset.test_labels)


def test_interrupted_evaluation_resumes(two_runs, tmp_path, monkeypatch):
    settings = _settings(attacks=("fgsm", "pgd"))
    calls = []
    interrupt = [True]

    class Killed(Exception):
        pass

    original = robustness.evaluate_attack

    def interrupt_second_attack(run, spec, *args, **kwargs):
        calls.append((run.label, spec.name))
        if interrupt[0] and len(calls) == 2:
            raise Killed
        return original(run, spec, *args, **kwargs)

    monkeypatch.setattr(robustness, "evaluate_attack", interrupt_second_attack)
    with pytest.raises(Killed):
        robustness.evaluate_runs(two_runs, str(tmp_path), settings)
    calls.clear()
    interrupt[0] = False
    rows = robustness.evaluate_runs(two_runs, str(tmp_path), settings)
    assert ("standard", "fgsm") not in calls  # finished before the interruption: not redone
    assert len(calls) == 3
    assert len(rows) == 2 * 2 * 2 * 3


def test_resuming_with_other_settings_is_refused(two_runs, tmp_path):
    settings = _settings(attacks=("fgsm",))
    robustness.evaluate_runs(two_runs, str(tmp_path), settings)
    settings.num_samples = 5
    with pytest.raises(ValueError, match=r"other settings:\n  num_samples: 0 \(saved\), 5 \(now\)"):
        robustness.evaluate_runs(two_runs, str(tmp_path), settings)


def test_runs_can_be_added_under_the_all_protocol_only(two_runs, tmp_path, monkeypatch):
    settings = _settings(attacks=("fgsm",))
    settings.protocol = "all"
    first = robustness.evaluate_runs(two_runs[:1], str(tmp_path / "all"), settings)
    calls = []
    original = robustness.evaluate_attack

    def record(run, spec, *args, **kwargs):
        calls.append((run.label, spec.name))
        return original(run, spec, *args, **kwargs)

    monkeypatch.setattr(robustness, "evaluate_attack", record)
    rows = robustness.evaluate_runs(two_runs, str(tmp_path / "all"), settings)
    assert calls == [("deep", "fgsm")]
    assert [r for r in rows if r["run"] == "standard"] == first
    assert robustness.evaluate_runs(two_runs[1:], str(tmp_path / "all"), settings) == [
        r for r in rows if r["run"] == "deep"]
    settings.protocol = "common_correct"
    robustness.evaluate_runs(two_runs[:1], str(tmp_path / "common"), settings)
    with pytest.raises(ValueError, match=r"other settings:\n  workdirs: "):
        robustness.evaluate_runs(two_runs, str(tmp_path / "common"), settings)


def test_a_directory_that_is_no_training_run_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"has no config.json: is it the --workdir of a training run\?"):
        robustness.evaluate_runs([str(tmp_path)], str(tmp_path / "report"), _settings())


def test_a_checkpoint_that_does_not_fit_the_data_is_refused(two_runs):
    with pytest.raises(ValueError, match=r"does not fit paper_mlp on inputs \(28, 28, 1\) with 7 classes"):
        robustness.load_run(two_runs[0], num_classes=7, input_shape=(28, 28, 1))


def test_a_subset_of_a_class_sorted_test_set_covers_every_class():
    labels = np.repeat(np.arange(10), 50)  # an image folder's test set: class by class
    indices = robustness.select_samples([], None, labels, protocol="all", num_samples=100, batch_size=10)
    assert len(indices) == 100 and np.all(np.diff(indices) > 0)
    assert set(labels[indices]) == set(range(10))
    np.testing.assert_array_equal(indices, robustness.select_samples([], None, labels, protocol="all",
                                                                     num_samples=100, batch_size=10))


def _canned_audit(flags_by_run):
    """A stand-in for ``audit_runs.audit_run``: per seed, a report whose flags are ``flags_by_run[label]``
    and whose worst case is 0.1 x (seed + 1); records the calls."""
    calls = []

    def fake(run, x, y, key, *, eps, norm, budget, surrogate):
        calls.append((run.label, surrogate.label if surrogate else None, int(len(y))))
        flagged = flags_by_run[run.label]
        indicators = {name: audit_library.indicator(1.0, 0.5, name in flagged, f"{name} evidence",
                                                    kind=audit_library.indicator_kind(name))
                      for name in ("zero_gradients/ce", "not_converged")}
        return {seed: audit_library.AuditReport(
            tuple(n for n in indicators if n in flagged), indicators, 0.1 * (i + 1), np.ones(len(y), bool), 1.0,
            {"pgd10": 0.9}, {}, {"pgd10": ["90.0 % is far above"]}, {"eps": eps, "norm": norm, "budget": budget})
            for i, seed in enumerate(run.seeds)}

    return fake, calls


def test_the_audit_adds_verdicts_to_the_tables_and_resumes(two_runs, tmp_path, monkeypatch):
    settings = _settings(attacks=("fgsm",))
    settings.audit = True
    settings.audit_num_samples = 4
    settings.audit_eps_linf = 0.5
    fake, calls = _canned_audit({"standard": (), "deep": ("zero_gradients/ce", "not_converged")})
    monkeypatch.setattr(audit_runs, "audit_run", fake)
    robustness.evaluate_runs(two_runs, str(tmp_path), settings)
    assert calls == [("standard", None, 4), ("deep", "standard", 4)]  # standard: the others' surrogate
    saved = json.loads((tmp_path / "audit.json").read_text())
    assert saved["settings"]["eps"] == 0.5 and saved["settings"]["budget"] == "quick"
    assert set(saved["runs"]["deep"]["seeds"]) == {"0", "1"}
    assert saved["runs"]["deep"]["settings"]["surrogate"] == two_runs[0]
    table = (tmp_path / "table.md").read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in table.splitlines()
            if line.startswith("|")}
    assert rows["audited worst case"][1:] == ["0.5", "-", "-", "15.00 ± 7.07", "15.00 ± 7.07 |"]
    assert rows["audit verdict"][-2:] == ["trustworthy", "masking suspected |"]
    assert "**deep**: masking suspected" in table and "zero_gradients/ce (masking, 2/2 seeds)" in table
    assert "not_converged (attack, 2/2 seeds)" in table and "pgd10 (2/2 seeds)" in table
    worst = (tmp_path / "table_worst_case.md").read_text().splitlines()
    assert worst[0].endswith("| Worst case | Audited worst case | Audit |")
    assert worst[-1].endswith("| 15.00 ± 7.07 | masking suspected |")
    calls.clear()
    robustness.evaluate_runs(two_runs, str(tmp_path), settings)  # resumed: nothing audited again
    assert calls == []
    assert (tmp_path / "table.md").read_text() == table


@pytest.mark.slow
def test_the_real_audit_in_the_report(two_runs, tmp_path):
    settings = _settings(attacks=("fgsm",))
    settings.audit = True
    settings.table_eps_linf = 0.5
    robustness.evaluate_runs(two_runs, str(tmp_path), settings)
    saved = json.loads((tmp_path / "audit.json").read_text())
    assert saved["runs"]["deep"]["settings"]["surrogate"] == two_runs[0]
    fgsm = {(r["run"], r["seed"]): r["accuracy"] for r in robustness.load_results(tmp_path / "results.jsonl")
            if r["eps"] == 0.5}
    for label in ("standard", "deep"):
        for seed in (0, 1):
            report = saved["runs"][label]["seeds"][str(seed)]
            assert report["robust_accuracy"] <= fgsm[(label, seed)] + 1e-9  # FGSM is one of the audit's attacks
            assert report["verdict"] in table_cells(tmp_path / "audit.md")
    assert "| audit verdict | 0.5 |" in (tmp_path / "table.md").read_text()


def table_cells(path):
    return {cell.strip() for line in path.read_text().splitlines() for cell in line.split("|")}


def test_without_the_audit_the_tables_have_no_verdict(two_runs, tmp_path):
    robustness.evaluate_runs(two_runs, str(tmp_path), _settings(attacks=("fgsm",)))
    assert "audit" not in (tmp_path / "table.md").read_text().lower()
    assert "Audit" not in (tmp_path / "table_worst_case.md").read_text()
    assert not (tmp_path / "audit.json").exists()
