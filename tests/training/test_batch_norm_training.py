"""Batch-norm state through the pipeline: training updates the running statistics (per seed), a killed
run resumes to the same parameters *and* statistics, evaluation and attacks see the model in
inference mode, and adversarial / layer-wise training run on a batch-norm model."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import tiny_config

from gfa_jax import config as gfa_config
from gfa_jax import models
from gfa_jax.defenses.compose import make_objective
from gfa_jax.evaluation import robustness
from gfa_jax.models.layers import batch_norm, capture_layer_input
from gfa_jax.models.state import bind, split_variables
from gfa_jax.training import train


class TinyBatchNormCNN(nn.Module):
    """Conv-BN-ReLU twice, then Dense: the smallest model with batch-norm state."""

    num_classes: int = 10

    @property
    def layer_names(self):
        return ("conv1", "conv2", "fc")

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = capture_layer_input(self, "conv1", x)
        h = nn.relu(batch_norm(train, "bn1")(nn.Conv(4, (3, 3), strides=2, name="conv1")(h)))
        h = capture_layer_input(self, "conv2", h)
        h = nn.relu(batch_norm(train, "bn2")(nn.Conv(8, (3, 3), strides=2, name="conv2")(h)))
        h = capture_layer_input(self, "fc", h.mean(axis=(1, 2)))
        return nn.Dense(self.num_classes, name="fc")(h)


@pytest.fixture(autouse=True)
def tiny_bn_model(monkeypatch):
    monkeypatch.setitem(models.MODELS, "tiny_bn_cnn", TinyBatchNormCNN)


def bn_config(data_dir, epochs=2):
    config = tiny_config(data_dir, seeds=(0, 1), strategy="first", epochs=epochs)
    config.model.name = "tiny_bn_cnn"
    config.gfa.beta = gfa_config.strategy_beta("first", "tiny_bn_cnn", 0.1)
    return config


def run(config, workdir, then=None):
    final = {}

    def keep_states(epoch, states):
        final["states"] = states
        if then is not None:
            then(epoch, states)

    summary = train.train_and_evaluate(config, str(workdir), epoch_callback=keep_states)
    return summary, final.get("states")


def test_statistics_train_per_seed_and_a_killed_run_resumes_to_the_same_state(tiny_fashion_mnist, tmp_path):
    config = bn_config(tiny_fashion_mnist)
    summary, states = run(config, tmp_path / "whole")
    stats = states.model_state["batch_stats"]["bn1"]
    assert not np.allclose(stats["mean"], 0.0) and not np.allclose(stats["var"], 1.0)  # moved from init
    assert not np.allclose(stats["mean"][0], stats["mean"][1])  # each seed its own statistics
    assert 0.0 <= summary["test_accuracy"]["mean"] <= 1.0

    class Killed(Exception):
        pass

    def kill_after_epoch_1(epoch, _):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        run(config, tmp_path / "resumed", then=kill_after_epoch_1)
    _, resumed = run(config, tmp_path / "resumed")
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 (states.params, states.model_state), (resumed.params, resumed.model_state))

    # The report attacks the model in inference mode, with the trained statistics.
    trained = robustness.load_run(tmp_path / "whole", num_classes=10, input_shape=(28, 28, 1))
    x = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1), minval=-1, maxval=1)
    seed_1 = jax.tree.map(lambda leaf: leaf[1], (states.params, states.model_state))
    expected = TinyBatchNormCNN().apply({"params": seed_1[0], **seed_1[1]}, x, train=False)
    np.testing.assert_allclose(trained.logits_fn(1)(x), expected, rtol=1e-5, atol=1e-6)
    settings = config.robustness
    settings.attacks, settings.num_samples, settings.figures, settings.protocol = ("fgsm",), 16, False, "all"
    # No audit (it is not what this test checks): the real audit of a report runs in test_readme.py's
    # training runs and in test_robustness.py::test_the_real_audit_in_the_report.
    settings.audit = False
    rows = robustness.evaluate_runs([tmp_path / "whole"], tmp_path / "report", settings)
    assert {row["seed"] for row in rows} == {0, 1}


@pytest.mark.parametrize("model_mode", ["eval", "train"])
def test_adversarial_and_layerwise_training_update_the_statistics(model_mode):
    model = TinyBatchNormCNN()
    x = jax.random.uniform(jax.random.key(0), (8, 12, 12, 1), minval=-1, maxval=1)
    y = jnp.arange(8) % 10
    params, state = split_variables(model.init(jax.random.key(1), x))
    config = gfa_config.base_config()
    config.batch_size, config.gfa.beta = 8, (0.0, 0.0, 0.0)
    config.adversarial.enabled, config.adversarial.steps, config.adversarial.model_mode = True, 2, model_mode
    objective = make_objective(config, model)
    (value, (_, _, new_state)), grads = jax.jit(jax.value_and_grad(objective.loss, has_aux=True))(
        params, state, x, y, jax.random.key(2), {})
    assert np.isfinite(value) and not np.allclose(new_state["batch_stats"]["bn1"]["mean"], 0.0)

    config.adversarial.enabled, config.layerwise.enabled, config.layerwise.layers = False, True, ("conv2",)
    objective = make_objective(config, model)
    carry = objective.init_carry(params, state, x[:1])
    value, (_, carry, new_state) = jax.jit(objective.loss)(params, state, x, y, jax.random.key(2), carry)
    assert carry["output_grads"]["conv2"].shape == (8, 3, 3, 8)
    assert not np.allclose(new_state["batch_stats"]["bn2"]["var"], 1.0)


def test_inference_mode_does_not_touch_the_statistics_and_train_mode_uses_the_batch():
    model = TinyBatchNormCNN()
    x = jax.random.normal(jax.random.key(0), (6, 12, 12, 1))
    params, state = split_variables(model.init(jax.random.key(1), x))
    evaluation, training = bind(model, state, train=False), bind(model, state, train=True)
    per_sample = jnp.concatenate([evaluation.apply({"params": params}, x[i:i + 1]) for i in range(6)])
    np.testing.assert_allclose(evaluation.apply({"params": params}, x), per_sample, rtol=1e-5, atol=1e-6)
    batch_dependent = training.apply({"params": params}, x)[:3] - training.apply({"params": params}, x[:3])
    assert float(jnp.abs(batch_dependent).max()) > 1e-4  # train mode normalises by the batch
    updated = training.updated_state(params, x)["batch_stats"]["bn1"]["mean"]
    assert not np.allclose(updated, state["batch_stats"]["bn1"]["mean"])
