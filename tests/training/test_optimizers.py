"""The optimizer built from config.optimizer: warm-up, schedules, optax optimizers by name."""
import jax.numpy as jnp
import numpy as np
import pytest

from gfa_jax import config as gfa_config
from gfa_jax.training import optimizers


def test_warmup_rises_linearly_from_zero_to_the_learning_rate():
    config = gfa_config.base_config()
    config.optimizer.name, config.optimizer.learning_rate = "sgd", 0.5
    config.optimizer.warmup_steps, config.optimizer.schedule = 4, "cosine"
    tx = optimizers.make_optimizer(config, total_steps=104)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    step_sizes = []
    for _ in range(6):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        step_sizes.append(-float(updates["w"]))
    np.testing.assert_allclose(step_sizes[:5], [0.0, 0.125, 0.25, 0.375, 0.5], rtol=1e-6)
    assert 0.49 < step_sizes[5] < 0.5  # then the cosine decay over the remaining 100 steps


def test_any_optax_optimizer_by_name_and_an_unknown_one_is_named():
    config = gfa_config.base_config()
    config.optimizer.name, config.optimizer.weight_decay = "lion", 0.1
    tx = optimizers.make_optimizer(config, total_steps=10)
    updates, _ = tx.update({"w": jnp.ones(())}, tx.init({"w": jnp.ones(())}), {"w": jnp.ones(())})
    assert float(updates["w"]) < 0
    config.optimizer.name = "adamm"
    with pytest.raises(ValueError, match=r"Unknown optimizer.name 'adamm': not an optax optimizer(.|\n)*adamw"):
        optimizers.make_optimizer(config, total_steps=10)
