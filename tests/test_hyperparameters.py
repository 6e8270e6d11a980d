"""The in-program sweep's axes: parsing, members in stacking order, and clear errors."""
import numpy as np
import pytest

from gfa_jax import config as gfa_config
from gfa_jax import hyperparameters


def _config(axes: str, **changes):
    config = gfa_config.base_config()
    config.sweep.axes = axes
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        config[section][key] = value
    return config


def test_members_are_every_seed_under_every_setting_setting_major():
    axes = hyperparameters.parse_axes('{"gfa.beta_scale": [0.1, 1.0], "optimizer.learning_rate": [0.001, 0.01]}')
    members = hyperparameters.members((3, 4), axes)
    assert len(members) == 8
    assert members.seeds == (3, 4) * 4
    assert members.settings[0] == {"gfa.beta_scale": 0.1, "optimizer.learning_rate": 0.001}
    assert members.settings[2] == {"gfa.beta_scale": 0.1, "optimizer.learning_rate": 0.01}
    assert members.settings[7] == {"gfa.beta_scale": 1.0, "optimizer.learning_rate": 0.01}
    np.testing.assert_allclose(members.hyper["gfa.beta_scale"], [0.1] * 4 + [1.0] * 4)
    assert members.hyper["optimizer.learning_rate"].dtype == np.float32
    assert members.label(3) == "seed 4 (gfa.beta_scale=0.1 optimizer.learning_rate=0.01)"


def test_without_axes_the_members_are_the_seeds():
    members = hyperparameters.members((0, 1, 2), hyperparameters.parse_axes(""))
    assert members.seeds == (0, 1, 2) and members.hyper == {} and members.label(1) == "seed 1"


def test_value_reads_the_swept_value_else_the_config():
    config = gfa_config.base_config()
    config.gfa.beta = (0.0, 0.5, 0.0)
    assert hyperparameters.value(config, {}, "gfa.beta.1") == 0.5
    assert hyperparameters.value(config, {"gfa.beta.1": 2.0}, "gfa.beta.1") == 2.0
    assert hyperparameters.value(config, None, "optimizer.learning_rate") == config.optimizer.learning_rate


@pytest.mark.parametrize("axes, message", [
    ('{"gfa.beta_scal": [1]}', r"'gfa.beta_scal' cannot be swept in-program\. Did you mean 'gfa.beta_scale'"),
    ('{"gfa.beta.3": [1]}', r"names layer 3, but the model has 3 layers"),
    ('{"adversarial.eps": [0.1]}', r"trains without adversarial inputs"),
    ('{"layerwise.eps": [0.1]}', r"layerwise.enabled is False"),
    ('{"optimizer.learning_rate": [0.0]}', r"must be > 0"),
    ('{"gfa.warmup_steps": [1.5]}', r"counts steps: give integers"),
    ('{"gfa.beta_scale": [1, 1]}', r"repeats a value"),
    ('{"gfa.beta_scale": []}', r"non-empty list of numbers"),
    ('gfa.beta_scale=1', r"sweep.axes is not JSON"),
])
def test_bad_axes_are_named_with_the_fix(axes, message):
    with pytest.raises(ValueError, match=message):
        gfa_config.validate(_config(axes))


def test_axes_of_enabled_defences_validate():
    config = _config('{"adversarial.eps": [0.05, 0.1], "gfa.beta.0": [0.0, 1.0], "gfa.warmup_steps": [0, 100]}',
                     adversarial__enabled=True)
    gfa_config.validate(config)
