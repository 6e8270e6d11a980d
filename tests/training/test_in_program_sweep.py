"""Hyperparameters swept inside one program: each member equals its setting trained alone, with
every sweepable key traced; changing the swept values does not recompile; the run's metrics and
summary follow the settings."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gfa_jax import config as gfa_config
from gfa_jax import hyperparameters
from gfa_jax.defenses.gfa import warmup_factor
from gfa_jax.training import multiseed, train
from gfa_jax.training.train_state import make_model
from gfa_jax.training.train_step import epoch_keys, epoch_orders, init_members, make_multiseed_step, make_recipe
from tiny_configs import tiny_config

SEEDS = (0, 1)
BATCH, NUM_EXAMPLES, STEPS = 8, 32, 3


def _images_and_labels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (NUM_EXAMPLES, 28, 28, 1), dtype=np.uint8)
    return jnp.asarray(images), jnp.asarray(rng.integers(0, 10, NUM_EXAMPLES, dtype=np.int32))


def _train_steps(config, axes: dict):
    """STEPS steps of every member of ``config`` under ``axes``; returns (states, members, step_fn)."""
    members = hyperparameters.members(SEEDS, axes)
    model = make_model(config, 10)
    recipe = make_recipe(config, model, total_steps=20, steps_per_epoch=NUM_EXAMPLES // BATCH)
    sample_x = jnp.zeros((1, 28, 28, 1))
    states = init_members(recipe, model, sample_x, multiseed.seed_keys(members.seeds, 0), members.hyper)
    orders = epoch_orders(multiseed.seed_keys(members.seeds, 1), 1, NUM_EXAMPLES)
    keys = epoch_keys(multiseed.seed_keys(members.seeds, 2), 1)
    step_fn = make_multiseed_step(recipe, BATCH)
    images, labels = _images_and_labels()
    for i in range(STEPS):
        states, _ = step_fn(states, members.hyper, images, labels, orders, keys, i)
    return states, members, step_fn


def _with_setting(config, setting: dict):
    """A copy of ``config`` with the setting's values written in (the run the member must equal)."""
    fixed = gfa_config.base_config()
    gfa_config.update_from_dict(fixed, json.loads(config.to_json()))
    for key, value in setting.items():
        section, name = key.split(".", 1)
        if section == "gfa" and name.startswith("beta."):
            beta = list(fixed.gfa.beta)
            beta[int(name.split(".")[1])] = value
            fixed.gfa.beta = tuple(beta)
        else:
            fixed[section][name] = int(value) if key == "gfa.warmup_steps" else value
    return fixed


def _base():
    config = gfa_config.base_config()
    config.batch_size = BATCH
    config.gfa.beta = (0.1, 0.05, 0.0)
    return config


def _gfa_case(config):
    return {"gfa.beta_scale": [0.5, 2.0], "gfa.alpha": [0.7], "gfa.beta.2": [0.3], "gfa.warmup_steps": [2]}


def _optimizer_case(config):
    config.optimizer.name, config.optimizer.momentum, config.optimizer.schedule = "sgd", 0.9, "cosine"
    config.optimizer.warmup_steps = 1
    return {"optimizer.learning_rate": [0.01, 0.05], "optimizer.weight_decay": [1e-3]}


def _adversarial_case(config):
    config.adversarial.enabled, config.adversarial.steps = True, 2
    return {"adversarial.eps": [0.05, 0.2]}


def _layerwise_case(config):
    config.layerwise.enabled, config.layerwise.eps_mode, config.layerwise.layers = True, "fixed", ("fc1",)
    return {"layerwise.eps": [0.05, 0.2]}


def _gaie_case(config):
    return {"gaie.weight": [0.1, 1.0]}


@pytest.mark.parametrize("case", [_gfa_case, _optimizer_case, _adversarial_case, _layerwise_case, _gaie_case],
                         ids=["gfa", "optimizer", "adversarial", "layerwise", "gaie"])
def test_each_member_equals_its_setting_trained_alone(case):
    config = _base()
    axes = {key: tuple(values) for key, values in case(config).items()}
    swept, members, _ = _train_steps(config, axes)
    setting = hyperparameters.settings(axes)[-1]  # the last: its members sit last on the stacked axis
    alone, _, _ = _train_steps(_with_setting(config, setting), {})
    members_of_setting = slice(len(members) - len(SEEDS), len(members))
    assert all(members.settings[m] == setting for m in range(len(members))[members_of_setting])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a)[members_of_setting], b, rtol=1e-4, atol=1e-5),
                 swept.params, alone.params)
    # The settings really train differently.
    first, last = np.asarray(swept.params["fc1"]["kernel"])[[0, -1]]
    assert not np.allclose(first, last)


def test_new_swept_values_reuse_the_compiled_step():
    config = _base()
    states, members, step_fn = _train_steps(config, {"gfa.beta_scale": (0.5, 2.0), "optimizer.learning_rate": (1e-3,)})
    assert step_fn._cache_size() == 1
    images, labels = _images_and_labels()
    orders = epoch_orders(multiseed.seed_keys(members.seeds, 1), 2, NUM_EXAMPLES)
    keys = epoch_keys(multiseed.seed_keys(members.seeds, 2), 2)
    other_values = {key: values * 3.0 for key, values in members.hyper.items()}
    step_fn(states, other_values, images, labels, orders, keys, 0)
    assert step_fn._cache_size() == 1


def test_warm_up_ramps_the_gfa_weights_linearly():
    np.testing.assert_allclose([warmup_factor(jnp.int32(t), 4) for t in range(6)], [0.25, 0.5, 0.75, 1, 1, 1])
    assert warmup_factor(jnp.int32(0), 0) == 1.0 and warmup_factor(None, 4) == 1.0
    np.testing.assert_allclose(warmup_factor(jnp.int32(0), jnp.float32(0.0)), 1.0)  # a swept 0: no warm-up


def test_a_swept_run_writes_its_settings_into_metrics_and_summary(tiny_fashion_mnist, tmp_path):
    config = tiny_config(tiny_fashion_mnist, seeds=(0, 1), epochs=1)
    config.sweep.axes = '{"gfa.beta_scale": [0.5, 2.0]}'
    summary = train.train_and_evaluate(config, str(tmp_path / "swept"))
    alone_config = tiny_config(tiny_fashion_mnist, seeds=(0, 1), epochs=1)
    alone_config.gfa.beta_scale = 2.0
    alone = train.train_and_evaluate(alone_config, str(tmp_path / "alone"))

    assert summary["axes"] == {"gfa.beta_scale": [0.5, 2.0]} and "test_accuracy" not in summary
    assert [entry["setting"] for entry in summary["settings"]] == [{"gfa.beta_scale": 0.5}, {"gfa.beta_scale": 2.0}]
    for key in ("test_accuracy", "train_accuracy"):
        np.testing.assert_allclose(summary["settings"][1][key]["mean"], alone[key]["mean"], atol=1e-6)
    rows = [json.loads(line) for line in (tmp_path / "swept" / "metrics.jsonl").read_text().splitlines()]
    test_rows = [(r["seed"], r["hyper/gfa.beta_scale"]) for r in rows if r["split"] == "test"]
    assert sorted(test_rows) == [(0, 0.5), (0, 2.0), (1, 0.5), (1, 2.0)]
