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
from gfa_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_config(data_dir, *, seeds=(0, 1, 2), strategy="deep", epochs=2):
    config = gfa_config.base_config()
    config.name = "test"
    config.strategy = strategy
    config.seeds = seeds
    config.num_epochs = epochs
    config.batch_size = 32
    config.log_every_steps = 2
    config.data.source = "idx"
    config.data.data_dir = str(data_dir)
    config.gfa.beta = gfa_config.strategy_beta(strategy, "paper_mlp", 0.1)
    config.eval.batch_size = 50
    config.eval.train_samples = 64
    config.robustness.enabled = False
    return config


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


def test_restart_with_a_different_config_is_refused(tiny_fashion_mnist, tmp_path):
    _run(tiny_config(tiny_fashion_mnist, epochs=1), tmp_path / "run")
    with pytest.raises(ValueError, match="different config"):
        _run(tiny_config(tiny_fashion_mnist, epochs=1, strategy="first"), tmp_path / "run")


def test_nan_loss_fails_with_advice(tiny_fashion_mnist, tmp_path):
    config = tiny_config(tiny_fashion_mnist, epochs=1, strategy="standard")
    config.optimizer.learning_rate = 1e38
    with pytest.raises(FloatingPointError, match="learning_rate"):
        _run(config, tmp_path / "run")


def test_validate_names_unknown_keys_and_bad_beta():
    config = gfa_config.base_config()
    config.unlock()
    config.optimizer.lr = 0.1
    config.gfa.beta = (1.0,)
    with pytest.raises(ValueError, match="optimizer.lr.*learning_rate"):
        gfa_config.validate(config)
    config = gfa_config.base_config()
    config.gfa.beta = (1.0,)
    with pytest.raises(ValueError, match="one weight per layer"):
        gfa_config.validate(config)


def test_validate_names_an_unknown_task_loss():
    config = gfa_config.base_config()
    config.task_loss = "hinge"
    with pytest.raises(ValueError, match=r"task_loss 'hinge' is not one of \['ce', 'mse'\]"):
        gfa_config.validate(config)


def test_warmup_rises_linearly_from_zero_to_the_learning_rate():
    config = gfa_config.base_config()
    config.optimizer.name, config.optimizer.learning_rate = "sgd", 0.5
    config.optimizer.warmup_steps, config.optimizer.schedule = 4, "cosine"
    tx = train.make_optimizer(config, total_steps=104)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    step_sizes = []
    for _ in range(6):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        step_sizes.append(-float(updates["w"]))
    np.testing.assert_allclose(step_sizes[:5], [0.0, 0.125, 0.25, 0.375, 0.5], rtol=1e-6)
    assert 0.49 < step_sizes[5] < 0.5  # then the cosine decay over the remaining 100 steps


def test_validate_names_unknown_attacks_and_bad_attack_kwargs():
    config = gfa_config.base_config()
    config.robustness.attacks = ("pgd", "pgdd")
    config.robustness.attack_kwargs = "{steps: 3}"
    with pytest.raises(ValueError, match=r"unknown attack 'pgdd'(.|\n)*attack_kwargs must be a JSON object"):
        gfa_config.validate(config)


@pytest.mark.parametrize(
    "strategy, model, expected",
    [
        ("standard", "paper_cnn", (0, 0, 0, 0, 0)),
        ("first", "paper_cnn", (2, 0, 0, 0, 0)),
        ("deep", "paper_cnn", (2, 2, 2, 0, 0)),
        ("deep", "paper_mlp", (2, 2, 0)),
    ],
)
def test_strategy_beta(strategy, model, expected):
    assert gfa_config.strategy_beta(strategy, model, 2.0) == tuple(float(e) for e in expected)


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "configs").glob("*.py") if p.stem != "__init__"))
def test_every_config_file_is_valid(name):
    module = __import__(f"configs.{name}", fromlist=["get_config"])
    gfa_config.validate(module.get_config())


def test_cli_rejects_an_unknown_override():
    result = subprocess.run(
        [sys.executable, "-m", "gfa_jax.main", "--config", "configs/quickstart.py", "--config.optimizer.lr=0.1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "lr" in result.stderr and ("not found" in result.stderr.lower() or "unknown" in result.stderr.lower())


@pytest.mark.parametrize("chunk", [None, 1, 2])
def test_map_seeds_chunks_equal_one_vmap(chunk):
    from gfa_jax import multiseed

    weights = jax.random.normal(jax.random.key(0), (5, 3, 3, 2, 4))  # five seeds' conv kernels
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 2))

    def conv(kernel, scale):
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) * scale

    scales = jnp.arange(5.0)
    expected = jax.vmap(conv)(weights, scales)
    np.testing.assert_allclose(jax.jit(lambda w, s: multiseed.map_seeds(conv, (w, s), chunk))(weights, scales),
                               expected, rtol=1e-5, atol=1e-5)


def test_convolutional_models_on_one_cpu_go_one_seed_at_a_time():
    from gfa_jax import multiseed

    one_device = multiseed.seed_mesh(5)  # gcd(5, 4 devices) = 1
    conv_params = {"conv": {"kernel": jnp.zeros((3, 3, 1, 2))}}
    dense_params = {"fc": {"kernel": jnp.zeros((4, 2))}}
    assert multiseed.seeds_per_vmap(0, one_device, conv_params) == 1
    assert multiseed.seeds_per_vmap(0, one_device, dense_params) is None
    assert multiseed.seeds_per_vmap(0, multiseed.seed_mesh(4), conv_params) is None  # sharded: vmap
    assert multiseed.seeds_per_vmap(2, one_device, dense_params) == 2


def test_atomic_writes_leave_readable_files_and_no_temporaries(tmp_path):
    from gfa_jax import metrics_io

    metrics_io.write_text_atomic(tmp_path / "table.md", "| a |\n")
    assert (tmp_path / "table.md").read_text() == "| a |\n"
    assert (tmp_path / "table.md").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]
