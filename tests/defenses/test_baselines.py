"""The baselines of DeepDefense's Tables 1-2: ADV (adversarial mix, no gradient through the attack),
GAIE (Sobel edges, alignment = a direct cosine, parameter gradient = finite differences) and DENOISE
(identity at init, parameter count, PaperCNN's layers), plus one end-to-end ADV + GAIE run."""
import functools
import json

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from gradient_checks import assert_gradient_matches_finite_differences
from tiny_configs import tiny_config

from gfa_jax.defenses import adversarial_training, gaie
from gfa_jax.training import train
from gfa_jax import config as gfa_config
from gfa_jax.defenses.gfa import gfa_loss, layer_gfa, mse_onehot
from gfa_jax.models import PaperCNN, PaperMLP, get_model
from gfa_jax.models.denoise import (
    NONLOCAL_VERSIONS,
    DenoisingBlock,
    PaperCNNDenoise,
    nonlocal_mean,
)
from gfa_jax.models.layers import LAYER_INPUTS
from gfa_jax.defenses.compose import make_objective

TINY_CNN = {"num_classes": 3, "conv_features": (4, 4), "hidden_features": (8,)}


def _images(key, shape=(6, 8, 8, 3)):
    return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)


def _tiny_cnn_problem(model_cls=PaperCNN, batch=6):
    model = model_cls(**TINY_CNN)
    x = _images(jax.random.key(0), (batch, 8, 8, 3))
    y = jnp.arange(batch) % 3
    params = model.init(jax.random.key(1), x)["params"]
    return model, params, x, y


def _param_count(model, x) -> int:
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes))


# ----------------------------------------------------------------------------- ADV


def test_adversarial_count_is_the_rounded_fraction():
    assert adversarial_training.adversarial_count(128, 0.5) == 64
    assert adversarial_training.adversarial_count(8, 0.25) == 2
    assert adversarial_training.adversarial_count(8, 0.0) == 0
    with pytest.raises(ValueError, match="mix_ratio"):
        adversarial_training.adversarial_count(8, 1.5)


def test_adversarial_mix_replaces_the_first_samples_within_eps():
    model, params, x, y = _tiny_cnn_problem()
    eps = 0.1
    x_mix, y_mix = adversarial_training.adversarial_inputs(
        params, x, y, jax.random.key(2), model=model, attack="pgd", eps=eps, steps=3, mix_ratio=0.5)
    assert x_mix.shape == x.shape and x_mix.dtype == x.dtype
    np.testing.assert_array_equal(y_mix, y)
    np.testing.assert_array_equal(x_mix[3:], x[3:])  # the clean part is untouched
    delta = np.abs(np.asarray(x_mix[:3] - x[:3]))
    assert delta.max() <= eps + 1e-6
    assert (delta.reshape(3, -1).max(axis=1) > 0.5 * eps).all()  # every attacked sample moved
    assert float(jnp.abs(x_mix).max()) <= 1.0


def test_single_step_attack_and_zero_ratio():
    model, params, x, y = _tiny_cnn_problem()
    kwargs = {"model": model, "attack": "fgsm", "eps": 0.05, "steps": 10}
    x_all, _ = adversarial_training.adversarial_inputs(params, x, y, jax.random.key(0), mix_ratio=1.0, **kwargs)
    np.testing.assert_allclose(np.abs(np.asarray(x_all - x)).max(), 0.05, rtol=1e-5)
    x_none, _ = adversarial_training.adversarial_inputs(params, x, y, jax.random.key(0), mix_ratio=0.0, **kwargs)
    assert x_none is x


def test_no_gradient_flows_through_the_attack():
    """The objective's gradient equals the plain loss gradient at the precomputed mixed batch."""
    model, params, x, y = _tiny_cnn_problem()
    config = gfa_config.base_config()
    config.gfa.beta = (0.0,) * len(model.layer_names)
    config.adversarial.enabled = True
    config.adversarial.steps = 3
    key = jax.random.key(3)
    objective = make_objective(config, model)
    grads = jax.grad(lambda p: objective.loss(p, {}, x, y, key, {})[0])(params)

    settings = {k: v for k, v in config.adversarial.items() if k not in ("enabled", "model_mode")}
    x_mix, _ = adversarial_training.adversarial_inputs(params, x, y, key, model=model, **settings)
    fixed = functools.partial(gfa_loss, model=model, layer_names=model.layer_names, beta=config.gfa.beta)
    expected = jax.grad(lambda p: fixed(p, x_mix, y)[0])(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads, expected)


# ----------------------------------------------------------------------------- GAIE


def _numpy_sobel_magnitude(images: np.ndarray) -> np.ndarray:
    """Sobel magnitude written with explicit shifts of an edge-padded image (independent of the conv)."""
    sx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = images.shape[1:3]
    gx = np.zeros(images.shape)
    gy = np.zeros(images.shape)
    for i in range(3):
        for j in range(3):
            window = padded[:, i:i + h, j:j + w]
            gx += sx[i, j] * window
            gy += sx.T[i, j] * window
    return np.sqrt(gx**2 + gy**2)


def test_edge_map_of_a_vertical_step_is_nonzero_only_at_the_step():
    image = np.full((1, 8, 8, 2), -1.0, np.float32)
    image[:, :, 4:, 0] = 1.0  # channel 0: a vertical step between columns 3 and 4; channel 1: flat
    edges = np.asarray(gaie.edge_map(jnp.asarray(image)))
    assert edges.shape == image.shape
    columns_with_edges = np.flatnonzero(edges[0, :, :, 0].max(axis=0) > 0)
    np.testing.assert_array_equal(columns_with_edges, [3, 4])
    np.testing.assert_allclose(edges[0, :, 3:5, 0], 8.0)  # Sobel: (1 + 2 + 1) * step height 2
    assert not edges[..., 1].any()
    np.testing.assert_allclose(edges, _numpy_sobel_magnitude(image), rtol=1e-6)


def test_gaie_alignment_equals_a_direct_cosine():
    model, params, x, y = _tiny_cnn_problem()
    alignment = gaie.gaie_alignment(params, x, y, model=model)

    def sample_loss(image, label):
        return mse_onehot(model.apply({"params": params}, image[None]), label[None])[0]

    gradients = np.abs(np.asarray(jax.vmap(jax.grad(sample_loss))(x, y))).reshape(len(y), -1)
    edges = _numpy_sobel_magnitude(np.asarray(x, np.float64)).reshape(len(y), -1)
    expected = [a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(gradients, edges)]
    np.testing.assert_allclose(alignment, expected, rtol=1e-4)
    assert ((0.0 <= alignment) & (alignment <= 1.0)).all()


def test_gaie_is_zero_not_nan_on_a_flat_image():
    model, params, x, y = _tiny_cnn_problem()
    flat = jnp.zeros_like(x)
    value, grads = jax.value_and_grad(lambda p: gaie.gaie_alignment(p, flat, y, model=model).sum())(params)
    assert float(value) == 0.0
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


def test_gaie_parameter_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        model = PaperMLP(num_classes=3, hidden_features=(5, 4))
        x = jax.random.uniform(jax.random.key(0), (4, 4, 4, 1), minval=-1, maxval=1).astype(jnp.float64)
        y = jnp.array([0, 1, 2, 1])
        params = jax.tree.map(lambda p: p.astype(jnp.float64), model.init(jax.random.key(1), x)["params"])
        loss_fn = jax.jit(lambda p: -gaie.gaie_alignment(p, x, y, model=model).mean())
        assert_gradient_matches_finite_differences(loss_fn, params)


# ----------------------------------------------------------------------------- DENOISE


@pytest.mark.parametrize("version", NONLOCAL_VERSIONS)
def test_denoising_block_is_the_identity_at_init(version):
    x = _images(jax.random.key(0), (2, 4, 4, 6))
    block = DenoisingBlock(version)
    params = block.init(jax.random.key(1), x)["params"]
    np.testing.assert_array_equal(block.apply({"params": params}, x), x)
    # With a nonzero 1x1 conv the block does change its input.
    params = {**params, "conv": {"kernel": jnp.ones_like(params["conv"]["kernel"])}}
    out = block.apply({"params": params}, x)
    assert out.shape == x.shape and not np.allclose(out, x)


def test_softmax_nonlocal_mean_of_a_constant_map_is_that_map():
    x = _images(jax.random.key(0), (2, 4, 4, 3))
    constant = jnp.broadcast_to(jnp.arange(3.0), x.shape)
    np.testing.assert_allclose(nonlocal_mean(x, x, constant, "gaussian"), constant, rtol=1e-6)


@pytest.mark.parametrize("version", ["embedded_gaussian", "dot_product"])
def test_chunked_nonlocal_mean_equals_the_whole_batch_at_once_with_its_gradient(version):
    keys = jax.random.split(jax.random.key(0), 3)
    q, k = (_images(key, (5, 4, 4, 2)) for key in keys[:2])
    v = _images(keys[2], (5, 4, 4, 3))

    def summed(chunk):
        return lambda q, k, v: jnp.sum(jnp.sin(nonlocal_mean(q, k, v, version, chunk)))

    np.testing.assert_allclose(nonlocal_mean(q, k, v, version, 2), nonlocal_mean(q, k, v, version), rtol=1e-5, atol=1e-6)
    chunked = jax.grad(summed(2), argnums=(0, 1, 2))(q, k, v)
    whole = jax.grad(summed(None), argnums=(0, 1, 2))(q, k, v)
    for a, b in zip(chunked, whole):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_paper_cnn_denoise_adds_only_the_blocks_parameters():
    # Per block, C channels: theta and phi 2 * C * C/2, the output 1x1 conv C * C.
    x = jnp.zeros((1, 32, 32, 3))
    assert _param_count(PaperCNN(), x) == 2_664_144
    assert _param_count(PaperCNNDenoise(), x) == 2_664_144 + 2 * (2 * 32 * 16 + 32 * 32) == 2_668_240
    tiny_x = jnp.zeros((1, 8, 8, 3))
    assert _param_count(PaperCNNDenoise(**TINY_CNN), tiny_x) == _param_count(PaperCNN(**TINY_CNN), tiny_x) + 2 * (2 * 4 * 2 + 4 * 4)


def test_paper_cnn_denoise_keeps_paper_cnn_layers():
    model, params, x, y = _tiny_cnn_problem(PaperCNNDenoise)
    reference, ref_params, _, _ = _tiny_cnn_problem(PaperCNN)
    assert get_model("paper_cnn_denoise").layer_names == get_model("paper_cnn").layer_names
    captured = model.apply({"params": params}, x, mutable=[LAYER_INPUTS])[1][LAYER_INPUTS]
    ref_captured = reference.apply({"params": ref_params}, x, mutable=[LAYER_INPUTS])[1][LAYER_INPUTS]
    assert jax.tree.map(jnp.shape, captured) == jax.tree.map(jnp.shape, ref_captured)
    # Zero-initialised blocks: the same function as PaperCNN with the same layer weights.
    shared = {name: params[name] for name in ref_params}
    np.testing.assert_allclose(model.apply({"params": params}, x),
                               reference.apply({"params": shared}, x), rtol=1e-6)
    _, _, gfa = layer_gfa(model, params, x, y, model.layer_names)
    assert set(gfa) == set(model.layer_names)
    assert all(np.isfinite(np.asarray(v)).all() for v in gfa.values())


# ----------------------------------------------------------------------------- end to end


def test_adversarial_and_gaie_training_run_end_to_end(tiny_fashion_mnist, tmp_path):
    config = tiny_config(tiny_fashion_mnist, seeds=(0,), strategy="standard", epochs=1)
    config.adversarial.enabled = True
    config.adversarial.eps = 0.2
    config.adversarial.steps = 2
    config.gaie.weight = 0.01
    summary = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert 0.0 <= summary["test_accuracy"]["mean"] <= 1.0
    assert 0.0 <= summary["test_gaie"]["mean"] <= 1.0 and "train_gaie" in summary
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    batches = next(line for line in lines if line["split"] == "train_batches")
    assert np.isfinite(batches["loss"]) and 0.0 <= batches["gaie"] <= 1.0
    assert {"gaie/mean", "gaie/std"} <= set(next(line for line in lines if line["split"] == "test"))


def test_gfa_table_has_the_papers_adv_and_gaie_rows_and_gaie_note():
    from gfa_jax.evaluation.gfa_table import gfa_table

    layers = ["conv1", "conv2", "fc1", "fc2", "fc3"]
    gfa = {n: {"mean": 0.0, "std": 0.0} for n in layers}
    base = {"model": "paper_cnn", "layers": layers, "epochs": 1, "seeds": [0], "train_gfa": gfa, "test_gfa": gfa}
    table = gfa_table([base | {"strategy": "adv"},
                       base | {"strategy": "gaie", "name": "cifar_gaie", "train_gaie": {"mean": 0.9, "std": 0.01}}])
    assert "| adv (paper) | train |  |  |  | 0.0008 ± 0.0035 |" in table
    assert "| gaie (paper) | test |  |  |  | -0.0262 ± 0.0120 |" in table
    assert "GAIE alignment of cifar_gaie: train 0.9000 ± 0.0100 (paper 0.9360 ± 0.0141)" in table
