"""Seeds stacked on one axis: chunked maps equal one vmap; convolutional models on one CPU go one at a time."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gfa_jax.training import multiseed


@pytest.mark.parametrize("chunk", [None, 1, 2])
def test_map_seeds_chunks_equal_one_vmap(chunk):
    weights = jax.random.normal(jax.random.key(0), (5, 3, 3, 2, 4))  # five seeds' conv kernels
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 2))

    def conv(kernel, scale):
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) * scale

    scales = jnp.arange(5.0)
    expected = jax.vmap(conv)(weights, scales)
    np.testing.assert_allclose(jax.jit(lambda w, s: multiseed.map_seeds(conv, (w, s), chunk))(weights, scales),
                               expected, rtol=1e-5, atol=1e-5)


def test_convolutional_models_on_one_cpu_go_one_seed_at_a_time():
    one_device = multiseed.seed_mesh(5)  # gcd(5, 4 devices) = 1
    conv_params = {"conv": {"kernel": jnp.zeros((3, 3, 1, 2))}}
    dense_params = {"fc": {"kernel": jnp.zeros((4, 2))}}
    assert multiseed.seeds_per_vmap(0, one_device, conv_params) == 1
    assert multiseed.seeds_per_vmap(0, one_device, dense_params) is None
    assert multiseed.seeds_per_vmap(0, multiseed.seed_mesh(4), conv_params) is None  # sharded: vmap
    assert multiseed.seeds_per_vmap(2, one_device, dense_params) == 2
