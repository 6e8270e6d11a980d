"""The multistep learning-rate schedule and the augmentation hook of the train step."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gfa_jax import augmentation
from gfa_jax import config as gfa_config
from gfa_jax.defenses.objective import Objective, no_carry
from gfa_jax.training import optimizers, train_state, train_step


def _step_sizes(tx, steps):
    params = {"w": jnp.zeros(())}
    state, sizes = tx.init(params), []
    for _ in range(steps):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        sizes.append(-float(updates["w"]))
    return np.array(sizes)


@pytest.mark.parametrize("warmup", [0, 2])
def test_multistep_multiplies_the_learning_rate_at_the_start_of_each_decay_epoch(warmup):
    config = gfa_config.base_config()
    config.num_epochs = 6
    config.optimizer.name, config.optimizer.learning_rate = "sgd", 0.1
    config.optimizer.schedule, config.optimizer.warmup_steps = "multistep", warmup
    config.optimizer.decay_epochs, config.optimizer.decay_factor = (3, 5), 0.1
    gfa_config.validate(config)
    sizes = _step_sizes(optimizers.make_optimizer(config, total_steps=6 * 4, steps_per_epoch=4), 24)  # 4 steps per epoch
    expected = np.array([0.1] * 12 + [0.01] * 8 + [0.001] * 4)
    expected[:warmup] = np.arange(warmup) * 0.1 / max(warmup, 1)
    np.testing.assert_allclose(sizes, expected, rtol=1e-5)


def test_multistep_rejects_a_decay_inside_the_warm_up():
    config = gfa_config.base_config()
    config.num_epochs, config.optimizer.schedule = 10, "multistep"
    config.optimizer.warmup_steps, config.optimizer.decay_epochs = 50, (1,)
    with pytest.raises(ValueError, match="after the warm-up"):
        optimizers.make_optimizer(config, total_steps=100, steps_per_epoch=10)


def test_validate_names_an_unknown_augmentation():
    config = gfa_config.base_config()
    config.data.augmentation = "autoaugment"
    with pytest.raises(ValueError, match="data.augmentation 'autoaugment'"):
        gfa_config.validate(config)


def _recording_objective():
    """Loss 0; reports the batch it was given and a draw from its key."""
    def loss(params, model_state, x, y, key, carry):
        value = 0.0 * params["w"]
        return value, ({"x": x, "key_draw": jax.random.uniform(key)}, carry, model_state)
    return Objective(loss, no_carry)


def test_train_step_augments_the_gathered_uint8_batch_and_keeps_the_objective_key():
    images = jnp.asarray(np.random.default_rng(0).integers(1, 256, (8, 8, 8, 3), dtype=np.uint8))
    labels = jnp.zeros(8, jnp.int32)
    tx = optax.sgd(0.1)
    state = train_state.TrainState(step=jnp.zeros((), jnp.int32), params={"w": jnp.ones(())},
                             opt_state=tx.init({"w": jnp.ones(())}), carry={})
    order = jnp.arange(8)[::-1]
    step = functools.partial(train_step.train_step, state, {}, images, labels, order, jax.random.key(3), jnp.int32(1),
                             recipe=train_step.fixed_recipe(_recording_objective(), tx), batch_size=4)
    _, plain = jax.jit(step)()
    _, mirrored = jax.jit(functools.partial(step, augment=lambda key, batch: batch[:, :, ::-1]))()
    _, cropped = jax.jit(functools.partial(step, augment=augmentation.augment))()
    batch = images[order[4:8]]  # step 1 of the epoch order
    np.testing.assert_allclose(plain["x"], batch / 127.5 - 1, rtol=1e-6)
    np.testing.assert_allclose(mirrored["x"], batch[:, :, ::-1] / 127.5 - 1, rtol=1e-6)
    assert not np.allclose(cropped["x"], plain["x"])
    assert plain["key_draw"] == mirrored["key_draw"] == cropped["key_draw"]
