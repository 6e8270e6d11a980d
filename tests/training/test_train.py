"""Multi-seed training end to end on a tiny synthetic IDX dataset: seeds trained together equal seeds
trained alone, the seed axis is sharded, a killed run resumes to the same parameters, bad configs
and NaN losses fail clearly."""
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gfa_jax import config as gfa_config
from gfa_jax.training import checkpoints, train
from tiny_configs import tiny_config

REPO = pathlib.Path(__file__).resolve().parents[2]


def _run(config, workdir, **kwargs):
    final = {}

    def keep_states(epoch, states):
        final["states"] = states

    summary = train.train_and_evaluate(config, str(workdir), epoch_callback=keep_states, **kwargs)
    return summary, final.get("states")


def test_seeds_trained_together_equal_seeds_trained_alone(tiny_fashion_mnist, tmp_path):
    _, together = _run(tiny_config(tiny_fashion_mnist, seeds=(0, 1, 2)), tmp_path / "together")
    _, alone = _run(tiny_config(tiny_fashion_mnist, seeds=(1,)), tmp_path / "alone")
    seed_1_together = jax.tree.map(lambda leaf: np.asarray(leaf)[1], together.params)
    seed_1_alone = jax.tree.map(lambda leaf: np.asarray(leaf)[0], alone.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), seed_1_together, seed_1_alone)
    # Different seeds really are different runs.
    assert not np.allclose(np.asarray(together.params["fc1"]["kernel"])[0], seed_1_alone["fc1"]["kernel"])


def test_seed_axis_is_sharded_across_devices(tiny_fashion_mnist, tmp_path):
    assert jax.device_count() == 4, "tests/conftest.py asks XLA for four host devices"
    _, states = _run(tiny_config(tiny_fashion_mnist, seeds=(0, 1, 2, 3), epochs=1), tmp_path / "run")
    kernel = states.params["fc1"]["kernel"]
    assert len(kernel.sharding.device_set) == 4
    assert kernel.addressable_shards[0].data.shape[0] == 1


def test_killed_run_resumes_to_the_same_parameters(tiny_fashion_mnist, tmp_path):
    config = tiny_config(tiny_fashion_mnist, epochs=3)
    _, uninterrupted = _run(config, tmp_path / "uninterrupted")

    class Killed(Exception):
        pass

    def kill_after_epoch_2(epoch, states):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train.train_and_evaluate(config, str(tmp_path / "resumed"), epoch_callback=kill_after_epoch_2)
    summary, resumed = _run(config, tmp_path / "resumed")
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), uninterrupted.params, resumed.params)
    lines = [json.loads(l) for l in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert sorted({(l["epoch"], l["seed"]) for l in lines if l["split"] == "test"}) == [
        (e, s) for e in (1, 2, 3) for s in (0, 1, 2)
    ]
    assert summary["epochs"] == 3


def test_summary_reports_every_layers_gfa_on_train_and_test(tiny_fashion_mnist, tmp_path):
    summary, _ = _run(tiny_config(tiny_fashion_mnist, epochs=1), tmp_path / "run")
    for split in ("train", "test"):
        assert set(summary[f"{split}_gfa"]) == {"fc1", "fc2", "fc3"}
        assert 0.0 <= summary[f"{split}_accuracy"]["mean"] <= 1.0
    assert summary["beta"] == [0.1, 0.1, 0.0]


def test_restart_with_a_different_config_is_refused_naming_what_differs(tiny_fashion_mnist, tmp_path):
    _run(tiny_config(tiny_fashion_mnist, epochs=1), tmp_path / "run")
    with pytest.raises(ValueError, match=r"different config:\n  gfa.beta: \[0.1, 0.1, 0.0\] \(saved\), \[0.1, 0.0, 0.0\] "
                                         r"\(now\)\n  strategy: 'deep' \(saved\), 'first' \(now\)"):
        _run(tiny_config(tiny_fashion_mnist, epochs=1, strategy="first"), tmp_path / "run")


def test_nan_loss_stops_naming_epoch_and_seed_and_keeps_the_last_good_checkpoint(tiny_fashion_mnist, tmp_path):
    config = tiny_config(tiny_fashion_mnist, epochs=3, strategy="standard", seeds=(0, 1))
    config.optimizer.schedule, config.optimizer.decay_epochs, config.optimizer.decay_factor = "multistep", (1,), 1e38
    with pytest.raises(FloatingPointError, match=r"non-finite for seed 0, seed 1\) at epoch 2(.|\n)*learning_rate"):
        _run(config, tmp_path / "run")
    manager = checkpoints.make_manager(tmp_path / "run" / "checkpoints")
    epoch, params, _ = checkpoints.restore_latest_variables(manager)
    assert epoch == 1 and all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params))


def test_a_damaged_checkpoint_falls_back_to_the_one_before_and_says_so(tiny_fashion_mnist, tmp_path, caplog):
    config = tiny_config(tiny_fashion_mnist, epochs=2, seeds=(0,))
    _, finished = _run(config, tmp_path / "run")
    for path in (tmp_path / "run" / "checkpoints" / "2").rglob("*"):
        if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])  # truncated
    (tmp_path / "run" / "summary.json").unlink()
    with caplog.at_level("WARNING", logger="gfa_jax"):
        summary, resumed = _run(config, tmp_path / "run")
    assert "epoch 2" in caplog.text and "unreadable" in caplog.text and "Restored the checkpoint of epoch 1" in caplog.text
    assert (tmp_path / "run" / "checkpoints_damaged" / "2").is_dir() and summary["epochs"] == 2
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), finished.params, resumed.params)
