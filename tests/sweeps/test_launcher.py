"""The launcher without a scheduler: sweep files, run names, plans, status and collect on
synthetic workdirs. The real SLURM runs are in test_slurm.py."""
import json
import os
import pathlib
import pickle
import subprocess
import sys

import ml_collections
import pytest

from gfa_jax import hyperparameters
from gfa_jax.sweeps import collect, executors, job, launcher, ledger, status
from gfa_jax.sweeps.sweep_file import (Run, build_config, flag_text, load_module, load_sweep, parse_assignments,
                                       run_name, split_spec)

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
SWEEPS = CONFIGS / "sweeps"
TINY = {"num_epochs": 1, "batch_size": 32, "robustness.attacks": ("fgsm",), "robustness.figures": False}


def write_sweep(directory: pathlib.Path, runs: str) -> pathlib.Path:
    path = directory / "tiny_sweep.py"
    path.write_text(f"CONFIG_DIR = {str(CONFIGS)!r}\n\ndef get_sweep(arg=None):\n    return {runs}\n")
    return path


def test_split_spec_and_flag_text():
    assert split_spec("configs/sweeps/a.py:cpu,4fc") == ("configs/sweeps/a.py", "cpu,4fc")
    assert split_spec("configs/sweeps/a.py") == ("configs/sweeps/a.py", None)
    assert flag_text((0, 1)) == "(0, 1)" and flag_text(("fgsm",)) == "('fgsm',)"
    assert flag_text(False) == "False" and flag_text("x,y") == "x,y" and flag_text(1e-3) == "0.001"
    assert parse_assignments(["config.data.data_dir=/a=b", "seeds=(0,)"]) == {"data.data_dir": "/a=b", "seeds": "(0,)"}
    with pytest.raises(ValueError):
        parse_assignments(["no_equals_sign"])


def test_run_name_is_stable_readable_and_unique():
    name = run_name("fmnist_mlp_standard.py", None, [("num_epochs", "1"), ("seeds", "(0,)")])
    # A literal: a change to the naming would orphan every launched sweep's workdirs.
    assert name == "fmnist_mlp_standard_num_epochs=1_seeds=0-b679fa12"
    assert run_name("fmnist_mlp_standard.py", None, [("seeds", "(0,)"), ("num_epochs", "1")]) == name
    assert run_name("fmnist_mlp_standard.py", None, [("num_epochs", "1"), ("seeds", "(1,)")]) != name
    assert run_name("fmnist_mlp_standard.py", "cpu", [("num_epochs", "1"), ("seeds", "(0,)")]) != name
    hidden = run_name("a.py", None, [("data.data_dir", "/x/y")], shown=())
    assert hidden.startswith("a-") and hidden != run_name("a.py", None, [("data.data_dir", "/x/z")], shown=())
    long = run_name("a.py", None, [(f"k{i}", "v" * 30) for i in range(10)])
    assert len(long) <= 100 + 9


def test_load_sweep_resolves_paths_from_the_sweep_file_not_the_cwd(tmp_path, monkeypatch):
    path = write_sweep(tmp_path, "[Run('fmnist_mlp_standard.py', overrides={'seeds': (0,)}), "
                                 "{'config': 'mnist_4fc_layerwise.py', 'arg': 'layer2,fixed'}]")
    path.write_text("from gfa_jax.sweeps.sweep_file import Run\n" + path.read_text())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    sweep = load_sweep(str(path), {"data.data_dir": "/data"})
    assert sweep.name == "tiny_sweep"
    assert [r.config_file for r in sweep.runs] == [CONFIGS / "fmnist_mlp_standard.py", CONFIGS / "mnist_4fc_layerwise.py"]
    assert sweep.runs[0].config_argv() == [f"--config={CONFIGS}/fmnist_mlp_standard.py", "--config.seeds=(0,)",
                                           "--config.data.data_dir=/data"]
    assert sweep.runs[1].config_argv()[0] == f"--config={CONFIGS}/mnist_4fc_layerwise.py:layer2,fixed"
    config = build_config(sweep.runs[0])
    assert config.seeds == (0,) and config.data.data_dir == "/data" and config.strategy == "standard"
    assert build_config(sweep.runs[1]).layerwise.eps_mode == "fixed"


def test_bad_sweeps_fail_before_anything_is_submitted(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_config"):
        load_sweep(str(write_sweep(tmp_path, "[{'config': 'no_such_config.py'}]")))
    with pytest.raises(ValueError, match="same run"):
        load_sweep(str(write_sweep(tmp_path, "[{'config': 'fmnist_mlp_standard.py'}] * 2")))
    sweep = load_sweep(str(write_sweep(tmp_path, "[{'config': 'fmnist_mlp_standard.py', 'overrides': {'nope': 1}}]")))
    with pytest.raises(ValueError, match="nope"):
        launcher.plan(sweep, tmp_path / "sweep")
    sweep = load_sweep(str(write_sweep(tmp_path, "[{'config': 'fmnist_mlp_standard.py', 'overrides': {'seeds': ()}}]")))
    with pytest.raises(ValueError, match="seeds is empty"):
        build_config(sweep.runs[0])


@pytest.mark.parametrize("spec,runs", [
    ("deepdefense_cifar.py", 6), ("deepdefense_cifar.py:cpu", 6), ("deepdefense_cifar.py:cpu,standard,deep", 2),
    ("deepdefense_fmnist.py", 4), ("deepdefense_fmnist.py:cpu", 4),
    ("layerwise_mnist.py", 20), ("layerwise_mnist.py:cpu", 20), ("layerwise_mnist.py:cpu,4fc", 11),
    ("layerwise_cifar.py", 10), ("layerwise_cifar.py:cpu", 10),
    ("cifar_deep_gfa_weight.py", 1), ("cifar_deep_gfa_weight.py:cpu", 1),
])
def test_paper_sweeps_build_valid_configs(spec, runs):
    sweep = load_sweep(str(SWEEPS / spec), {"data.data_dir": "/data"})
    assert len(sweep.runs) == runs
    configs = [build_config(run) for run in sweep.runs]  # validates each
    if spec.startswith("layerwise_mnist.py:cpu"):
        assert {(c.model.name, c.num_epochs, c.data.source) for c in configs} <= {
            ("mnist_4fc", 10, "idx"), ("mnist_3conv2fc", 5, "idx")}
    if spec == "deepdefense_cifar.py:cpu":
        assert {(c.num_epochs, c.data.train_size, c.robustness.enabled) for c in configs} == {(4, 10000, False)}
    assert len({(c.model.name, c.strategy) for c in configs}) == runs
    if spec.startswith("cifar_deep_gfa_weight.py"):  # one run, 3 scales x 2 warm-ups x 5 seeds in its program
        axes = hyperparameters.parse_axes(configs[0].sweep.axes)
        assert len(hyperparameters.members(configs[0].seeds, axes)) == 30


def test_layerwise_sweeps_cover_every_placement():
    rows = load_module(SWEEPS / "layerwise_mnist.py").ROWS
    for file, file_rows in rows.items():
        placements = load_module(CONFIGS / file).PLACEMENTS
        assert set(placements) | {"standard", "adv_input"} <= {row.split(",")[0] for row in file_rows}
    cifar_rows = load_module(SWEEPS / "layerwise_cifar.py").ROWS
    for file in ("cifar_vgg16_layerwise.py", "cifar100_wrn_layerwise.py"):
        assert set(load_module(CONFIGS / file).PLACEMENTS) | {"standard", "adv_input"} == set(cifar_rows)


def fake_workdir(workdir: pathlib.Path, config, *, summary=True, attacks=("fgsm",), epochs=(1,)) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort())
    for epoch in epochs:
        (workdir / "checkpoints" / str(epoch)).mkdir(parents=True)
    (workdir / "checkpoints" / "9.orbax-checkpoint-tmp-1").mkdir()  # an unfinished save: not a checkpoint
    if summary:
        (workdir / "summary.json").write_text(json.dumps({
            "name": config.name, "strategy": config.strategy, "epochs": max(epochs), "seeds": list(config.seeds),
            "test_accuracy": {"mean": 0.5, "std": 0.1}, "train_gfa": {"fc1": {"mean": 0.2, "std": 0.0}}}))
    out = workdir / "robustness"
    out.mkdir()
    rows = [{"run": config.strategy, "workdir": str(workdir.resolve()), "seed": seed, "attack": attack, "eps": eps,
             "accuracy": 0.25 * (1 + seed)} for attack in attacks for seed in config.seeds for eps in (0.0, 0.1)]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "table.md").write_text("| table |\n")


@pytest.fixture
def tiny_sweep(tmp_path):
    runs = [{"config": "fmnist_mlp_standard.py", "overrides": {**TINY, "seeds": (seed,)}} for seed in (0, 1)]
    runs += [{"config": "fmnist_mlp_first.py", "overrides": {**TINY, "seeds": (0, 1)}}]
    runs += [{"config": "fmnist_mlp_deep.py", "overrides": {**TINY, "robustness.attacks": ("fgsm", "pgd")}}]
    sweep = load_sweep(str(write_sweep(tmp_path, repr(runs))))
    return sweep, tmp_path / "sweep"


def test_plan_skips_finished_runs_and_resumes_interrupted_ones(tiny_sweep):
    sweep, sweep_dir = tiny_sweep
    configs = [build_config(run) for run in sweep.runs]
    workdirs = [ledger.run_workdir(sweep_dir, run) for run in sweep.runs]
    fake_workdir(workdirs[0], configs[0])  # finished
    fake_workdir(workdirs[1], configs[1], summary=False, epochs=(2, 3))  # interrupted after epoch 3
    fake_workdir(workdirs[3], configs[3], attacks=("fgsm",))  # trained, robustness report lacks pgd
    decisions = launcher.plan(sweep, sweep_dir)
    assert [d.action for d in decisions] == ["done", "resume", "start", "resume"]
    assert decisions[1].detail == "from epoch 3 of 1"
    assert job.checkpoint_epochs(workdirs[1]) == [2, 3]
    assert job.is_finished(workdirs[0], configs[0]) and not job.is_finished(workdirs[3], configs[3])
    text = launcher.describe(decisions)
    assert text.startswith("4 runs: 1 done, 0 live, 1 start, 2 resume")
    assert f"--workdir={workdirs[2]}" in text and "--config.seeds=(0, 1)" in text
    assert not ledger.manifest_path(sweep_dir).exists() and not ledger.jobs_path(sweep_dir).exists()


def test_a_run_whose_job_still_runs_is_not_submitted_again(tiny_sweep):
    sweep, sweep_dir = tiny_sweep
    ledger.write_manifest(sweep_dir, sweep, {})
    ledger.record_submissions(sweep_dir, [{"run": sweep.runs[2].name, "job_id": str(os.getpid()), "executor": "local",
                                           "folder": str(sweep_dir / "submitit"), "stdout": "o", "stderr": "e"}])
    assert [d.action for d in launcher.plan(sweep, sweep_dir)] == ["start", "start", "live", "start"]


def test_status_and_collect_on_synthetic_workdirs(tiny_sweep):
    sweep, sweep_dir = tiny_sweep
    ledger.write_manifest(sweep_dir, sweep, {})
    configs = [build_config(run) for run in sweep.runs]
    workdirs = [ledger.run_workdir(sweep_dir, run) for run in sweep.runs]
    fake_workdir(workdirs[0], configs[0])
    fake_workdir(workdirs[1], configs[1], summary=False, epochs=(1,))
    fake_workdir(workdirs[2], configs[2])
    folder = sweep_dir / "submitit"
    folder.mkdir()
    with open(folder / "7_1_0_result.pkl", "wb") as f:
        pickle.dump(("error", "Traceback (most recent call last):\n  ...\nValueError: loss is nan"), f)
    ledger.record_submissions(sweep_dir, [
        {"run": sweep.runs[1].name, "job_id": "7_1", "executor": "slurm", "folder": str(folder),
         "stdout": str(folder / "7_1_0_log.out"), "stderr": str(folder / "7_1_0_log.err")},
        {"run": sweep.runs[3].name, "job_id": "7_3", "executor": "slurm", "folder": str(folder),
         "stdout": str(folder / "7_3_0_log.out"), "stderr": str(folder / "7_3_0_log.err")}])
    statuses = status.sweep_status(sweep_dir)
    assert [s.state for s in statuses] == ["done", "failed", "done", "failed"]
    assert "ValueError: loss is nan (epoch 1 checkpointed)" in statuses[1].detail
    assert "ended without a result" in statuses[3].detail and statuses[3].log == str(folder / "7_3_0_log.err")
    live = status.run_status({"name": "r", "workdir": str(workdirs[3])}, {"executor": "slurm", "job_id": "7_3"},
                             {"7_3": "PENDING"})
    assert live.state == "pending" and "PENDING" in live.detail
    text = status.format_status(statuses)
    assert text.startswith("4 runs: 2 done, 0 running, 0 pending, 2 failed") and f"log: {folder}/7_1_0_log.err" in text

    paths = collect.collect(sweep_dir)
    summary_csv = paths["summary.csv"].read_text().splitlines()
    assert len(summary_csv) == 3 and "test_accuracy.mean" in summary_csv[0] and "train_gfa.fc1.mean" in summary_csv[0]
    assert sweep.runs[0].name in summary_csv[1] and sweep.runs[2].name in summary_csv[2]
    assert "2 of 4 runs trained" in paths["summary.md"].read_text()
    robustness_csv = paths["robustness.csv"].read_text().splitlines()
    assert len(robustness_csv) == 1 + 2 + 4  # run 0: one seed x 2 eps; run 2: two seeds x 2 eps
    md = paths["robustness.md"].read_text()
    assert f"| {sweep.runs[2].name} | first | fgsm | 0.1 | 2 | 0.3750 ± 0.1768 |" in md


def test_slurm_time_limits():
    assert [executors.slurm_minutes(t) for t in (90, "90", "1:30:00", "2-00:00:00", "45:30", "1-12")] == \
        [90, 90, 90, 2880, 46, 2160]
    with pytest.raises(ValueError):
        executors.slurm_minutes("soon")


def test_cli_help_and_dry_run(tiny_sweep, tmp_path):
    sweep, sweep_dir = tiny_sweep
    assert subprocess.run([sys.executable, "-m", "gfa_jax.launch", "--help"], cwd=REPO, capture_output=True).returncode == 0
    out = subprocess.run([sys.executable, "-m", "gfa_jax.launch", str(sweep.file), "--executor=slurm", "--dry_run",
                          f"--sweep_dir={sweep_dir}", "--set=data.data_dir=/data", "--slurm.partition=gpu"],
                         cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert "4 runs: 0 done, 0 live, 4 start, 0 resume" in out.stdout and "Dry run: nothing submitted." in out.stdout
    assert out.stdout.count("--config.data.data_dir=/data") == 4
    assert not sweep_dir.exists()
