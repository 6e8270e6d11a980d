"""A workdir written by the code before the package was reorganised (commit LEGACY_COMMIT, flat modules,
``robustness.attack_kwargs`` as JSON) still loads: its checkpoints evaluate, and its run resumes."""
from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest
from tiny_configs import tiny_config

from gfa_jax.evaluation import robustness
from gfa_jax.training import train

REPO = pathlib.Path(__file__).resolve().parents[2]
LEGACY_COMMIT = "9a745d8"  # the last commit with gfa_jax/train.py, gfa_jax/robustness.py, ... at the top level


def legacy_source(destination: pathlib.Path) -> pathlib.Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", LEGACY_COMMIT, "gfa_jax"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {LEGACY_COMMIT} is not in this clone (shallow?): {archive.stderr.decode()[:200]}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(destination)
    return destination


@pytest.fixture(scope="module")
def legacy_workdir(tmp_path_factory, tiny_fashion_mnist) -> pathlib.Path:
    root = tmp_path_factory.mktemp("legacy")
    source = legacy_source(root / "src")
    config = tiny_config(tiny_fashion_mnist, seeds=(0, 1), epochs=2)
    # The legacy run is killed once its first checkpoint is complete, as a user's run would be.
    script = (
        "import json, os, sys, time, ml_collections\n"
        "from gfa_jax import config as c, train\n"
        "config = c.base_config()\n"
        "def known(values, reference):  # keys added after that commit are left out\n"
        "    return {k: known(v, reference[k]) if isinstance(v, dict) else v for k, v in values.items()\n"
        "            if k in reference}\n"
        "config.update(ml_collections.ConfigDict(known(json.loads(sys.argv[1]), config.to_dict())))\n"
        "def stop(epoch, states):\n"
        "    while not os.path.isdir(os.path.join(sys.argv[2], 'checkpoints', '1')):\n"
        "        time.sleep(0.1)\n"
        "    os._exit(3)\n"
        "train.train_and_evaluate(config, sys.argv[2], epoch_callback=stop)\n")
    legacy = json.loads(config.to_json_best_effort())
    env = {**os.environ, "PYTHONPATH": str(source), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(legacy), str(root / "run")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "attack_kwargs" in json.loads((root / "run" / "config.json").read_text())["robustness"]
    return root / "run"


def test_legacy_checkpoints_evaluate_with_todays_code(legacy_workdir, tmp_path):
    settings = tiny_config(".").robustness
    settings.attacks, settings.num_samples, settings.figures, settings.protocol = ("fgsm",), 16, False, "all"
    settings.audit = False  # the audit of a report: test_readme.py's runs and test_robustness.py
    rows = robustness.evaluate_runs([legacy_workdir], tmp_path / "report", settings)
    assert {row["seed"] for row in rows} == {0, 1} and all(0.0 <= row["accuracy"] <= 1.0 for row in rows)


def test_legacy_run_resumes_with_todays_code(legacy_workdir, tiny_fashion_mnist):
    config = tiny_config(tiny_fashion_mnist, seeds=(0, 1), epochs=2)
    summary = train.train_and_evaluate(config, str(legacy_workdir))
    lines = [json.loads(line) for line in (legacy_workdir / "metrics.jsonl").read_text().splitlines()]
    assert summary["epochs"] == 2 and sorted({line["epoch"] for line in lines}) == [1, 2]
    assert len(lines) == 2 * 3 * 2  # epochs x splits (train batches, train, test) x seeds: epoch 1 not redone
