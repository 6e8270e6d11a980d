"""Layer-wise adversarial training: the perturbation of eqs. 6-9, the interceptor, the carry of
Algorithm 1, end-to-end training with resume, and the paper's MNIST models."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import load_config_module, tiny_config

from gfa_jax import config as gfa_config
from gfa_jax.defenses import layerwise
from gfa_jax.defenses.compose import make_objective
from gfa_jax.defenses.gfa import mse_onehot
from gfa_jax.models import FourFC, PaperCNN, PaperMLP, ThreeConvTwoFC, get_model
from gfa_jax.models.state import bind, split_variables
from gfa_jax.training import train

EPS = 0.3


def _module_map(module, kernel):
    return layerwise.bias_free_linear_map(module, kernel)


def _fgsm_output_change(apply, x, loss_of_output, eps):
    """``apply(x + r) - apply(x)`` for ``r = eps * sign(d loss(apply(x)) / dx)`` (eqs. 1 and 5)."""
    r = eps * jnp.sign(jax.grad(lambda u: loss_of_output(apply(u)))(x))
    return apply(x + r) - apply(x)


# ----------------------------------------------------------------------------- eqs. 6-9


@pytest.mark.parametrize("layer, x_shape", [
    (nn.Dense(1), (3, 7)),
    (nn.Conv(1, (3, 3), padding="VALID"), (3, 3, 3, 2)),  # one output position and channel
])
def test_one_output_unit_equals_the_input_fgsm_perturbation_exactly(layer, x_shape):
    x = jax.random.normal(jax.random.key(0), x_shape)
    params = layer.init(jax.random.key(1), x)
    target = jax.random.normal(jax.random.key(2), layer.apply(params, x).shape)
    loss = lambda y: jnp.sum((y - target) ** 2)
    apply = lambda u: layer.apply(params, u)
    g = jax.grad(loss)(apply(x))
    kernel = params["params"]["kernel"]
    expected = _fgsm_output_change(apply, x, loss, EPS)
    per_unit = layerwise.per_unit_perturbation(_module_map(layer, jnp.abs(kernel)), x.shape, g, EPS)
    np.testing.assert_allclose(per_unit, expected, rtol=1e-5, atol=1e-6)
    joint = layerwise.input_fgsm_perturbation(_module_map(layer, kernel), x, g, EPS)
    np.testing.assert_allclose(joint, expected, rtol=1e-5, atol=1e-6)


def test_dense_perturbation_is_eps_sign_g_times_column_l1_norms():
    kernel = jax.random.normal(jax.random.key(0), (5, 4))
    g = jax.random.normal(jax.random.key(1), (3, 4))
    expected = EPS * np.sign(g) * np.abs(np.asarray(kernel)).sum(0)
    np.testing.assert_allclose(layerwise.dense_perturbation(kernel, g, EPS, (3, 5)), expected, rtol=1e-6)


@pytest.mark.parametrize("layer, x_shape", [
    (nn.Dense(4), (2, 6)),
    (nn.Conv(3, (3, 3), strides=2, padding="SAME"), (2, 5, 5, 2)),
])
def test_each_unit_gets_the_fgsm_change_aimed_at_it_alone_and_bounds_the_joint_one(layer, x_shape):
    """R_j = (A r^(j))_j with r^(j) = eps*sign(d(g_j y_j)/dx), i.e. eps*sign(g_j)*sum_i |A_ji|."""
    x = jax.random.normal(jax.random.key(0), x_shape)
    params = layer.init(jax.random.key(1), x)
    kernel = params["params"]["kernel"]
    apply = lambda u: layer.apply(params, u)
    g = jax.random.normal(jax.random.key(2), apply(x).shape)
    paper = np.asarray(layerwise.per_unit_perturbation(_module_map(layer, jnp.abs(kernel)), x.shape, g, EPS))
    linear = _module_map(layer, kernel)
    jacobian = jax.jacobian(lambda u: linear(u[None])[0])(x[0])  # the same for every sample
    reach = np.abs(np.asarray(jacobian)).reshape(paper.shape[1:] + (-1,)).sum(-1)
    np.testing.assert_allclose(paper, EPS * np.sign(g) * reach, rtol=1e-5, atol=1e-6)
    for unit in [(0,) * (paper.ndim - 1), tuple(s - 1 for s in paper.shape[1:])]:
        aimed = _fgsm_output_change(apply, x, lambda y: jnp.sum(g[(slice(None),) + unit] * y[(slice(None),) + unit]), EPS)
        np.testing.assert_allclose(paper[(slice(None),) + unit], aimed[(slice(None),) + unit], rtol=1e-5, atol=1e-6)
    joint = layerwise.input_fgsm_perturbation(linear, x, g, EPS)
    np.testing.assert_allclose(joint, _fgsm_output_change(apply, x, lambda y: jnp.sum(g * y), EPS), rtol=1e-5, atol=1e-5)
    assert np.all(np.abs(joint) <= np.abs(paper) + 1e-5)


def test_eps_fixed_or_normal_from_the_key():
    assert float(layerwise.sample_eps(jax.random.key(0), 0.1, "fixed")) == pytest.approx(0.1)
    draws = np.array([layerwise.sample_eps(k, 0.1, "random") for k in jax.random.split(jax.random.key(0), 2000)])
    assert abs(draws.mean()) < 0.01 and draws.std() == pytest.approx(0.1, rel=0.1)
    same = layerwise.sample_eps(jax.random.key(5), 0.1, "random")
    assert float(same) == float(layerwise.sample_eps(jax.random.key(5), 0.1, "random"))
    with pytest.raises(ValueError, match="eps_mode"):
        layerwise.sample_eps(jax.random.key(0), 0.1, "uniform")


# ----------------------------------------------------------------------------- the interceptor


class Nested(nn.Module):
    """A model of our own: a conv and a dense inside a submodule, a dense outside."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(2, (3, 3), name="stem")(x))
        x = Block(name="block")(x.reshape(x.shape[0], -1))
        return nn.Dense(3, name="head")(x)


class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.relu(nn.Dense(5, name="dense")(x))


def _marked_layers(model, x, selection):
    params = model.init(jax.random.key(0), x)
    marked = []

    def mark(module, layer_input, output):
        marked.append(layerwise.layer_key(module))
        return output + 1.0

    with nn.intercept_methods(layerwise.layer_interceptor(selection, mark)):
        perturbed = model.apply(params, x)
    return marked, perturbed, model.apply(params, x)


@pytest.mark.parametrize("model, shape, selection, expected", [
    (PaperMLP(hidden_features=(6, 4)), (2, 28, 28, 1), ("all",), ["fc1", "fc2", "fc3"]),
    (PaperMLP(hidden_features=(6, 4)), (2, 28, 28, 1), ("fc2",), ["fc2"]),
    (PaperCNN(conv_features=(2, 2), hidden_features=(4, 3)), (2, 8, 8, 3), ("conv",), ["conv1", "conv2"]),
    (PaperCNN(conv_features=(2, 2), hidden_features=(4, 3)), (2, 8, 8, 3), ("dense", "conv2"), ["conv2", "fc1", "fc2", "fc3"]),
    (PaperCNN(conv_features=(2, 2), hidden_features=(4, 3)), (2, 8, 8, 3), ("all", "!conv1"), ["conv2", "fc1", "fc2", "fc3"]),
    (Nested(), (2, 4, 4, 1), ("dense",), ["block.dense", "head"]),
    (Nested(), (2, 4, 4, 1), ("block/dense", "stem"), ["stem", "block.dense"]),
])
def test_interceptor_transforms_exactly_the_chosen_layers(model, shape, selection, expected):
    marked, perturbed, plain = _marked_layers(model, jnp.zeros(shape), selection)
    assert marked == expected
    assert not np.allclose(perturbed, plain)  # it acted, and outside the context the model is plain


def test_unknown_layer_name_is_reported_with_the_model_layers():
    model = PaperMLP(hidden_features=(6, 4))
    x = jnp.zeros((2, 28, 28, 1))
    params = model.init(jax.random.key(0), x)["params"]
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['fc9'\].*'fc1', 'fc2', 'fc3'"):
        layerwise.selected_output_shapes(model, params, x, ("fc9",))


# ----------------------------------------------------------------------------- the objective and its carry


def _objective(model_name="paper_mlp", layers=("fc2", "fc3"), batch=4, beta=None, **settings):
    config = gfa_config.base_config()
    config.model.name = model_name
    config.batch_size = batch
    config.layerwise.enabled = True
    config.layerwise.layers = layers
    for key, value in settings.items():
        config.layerwise[key] = value
    if beta is not None:
        config.gfa.beta = beta
    model = PaperMLP(hidden_features=(8, 6))
    return config, model, make_objective(config, model)


def _batch(seed, batch=4):
    x = jax.random.uniform(jax.random.key(seed), (batch, 28, 28, 1), minval=-1, maxval=1)
    return x, jax.random.randint(jax.random.key(seed + 100), (batch,), 0, 10)


def test_first_step_is_unperturbed_and_the_carry_is_dL_dy_of_that_batch():
    _, model, objective = _objective(eps_mode="fixed")
    x, y = _batch(0)
    params = model.init(jax.random.key(0), x[:1])["params"]
    carry = objective.init_carry(params, {}, x[:1])
    assert {k: v.shape for k, v in carry["output_grads"].items()} == {"fc2": (4, 6), "fc3": (4, 10)}
    (value, (_, carry, _)), grads = jax.value_and_grad(objective.loss, has_aux=True)(params, {}, x, y, jax.random.key(1), carry)

    # Zero carry: the forward pass is the plain one (Algorithm 1, line 3), and so is the gradient.
    plain = lambda p: mse_onehot(model.apply({"params": p}, x), y).mean()
    np.testing.assert_allclose(value, plain(params), rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads, jax.grad(plain)(params))

    def loss_of_fc_outputs(deltas):
        def add(module, layer_input, output):
            return output + deltas[layerwise.layer_key(module)]
        with nn.intercept_methods(layerwise.layer_interceptor(("fc2", "fc3"), add)):
            return mse_onehot(model.apply({"params": params}, x), y).mean()

    expected = jax.grad(loss_of_fc_outputs)(jax.tree.map(jnp.zeros_like, carry["output_grads"]))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8), carry["output_grads"], expected)


@pytest.mark.parametrize("form", layerwise.FORMS)
def test_next_step_adds_the_perturbation_of_the_carried_gradients(form):
    _, model, objective = _objective(eps_mode="fixed", eps=EPS, form=form, beta=(0.0, 0.1, 0.0))
    x, y = _batch(0)
    params = model.init(jax.random.key(0), x[:1])["params"]
    carry = objective.init_carry(params, {}, x[:1])
    carry = {**carry, "output_grads": jax.tree.map(lambda g: jax.random.normal(jax.random.key(3), g.shape), carry["output_grads"])}
    (value, (metrics, new_carry, _)), grads = jax.value_and_grad(objective.loss, has_aux=True)(
        params, {}, x, y, jax.random.key(1), carry)

    def expected_loss(p):
        def perturb(module, layer_input, output):
            return output + layerwise.layer_perturbation(module, layer_input, carry["output_grads"][layerwise.layer_key(module)], EPS, form)
        with nn.intercept_methods(layerwise.layer_interceptor(("fc2", "fc3"), perturb)):
            return mse_onehot(model.apply({"params": p}, x), y).mean()

    assert float(metrics["layerwise/eps"]) == pytest.approx(EPS)
    assert float(metrics["task_loss"]) == pytest.approx(float(expected_loss(params)), rel=1e-5)
    assert not np.isclose(float(metrics["task_loss"]), float(mse_onehot(model.apply({"params": params}, x), y).mean()))
    assert "gfa/fc2" in metrics  # the base objective (GFA) runs under the perturbation
    assert np.all(np.isfinite(jax.tree.leaves(grads)[0]))


def test_no_gradient_flows_through_the_carry():
    _, model, objective = _objective(eps_mode="fixed")
    x, y = _batch(0)
    params = model.init(jax.random.key(0), x[:1])["params"]
    carry = objective.init_carry(params, {}, x[:1])
    carry_grad = jax.grad(lambda c: objective.loss(params, {}, x, y, jax.random.key(1), c)[0])(
        {**carry, "output_grads": jax.tree.map(jnp.ones_like, carry["output_grads"])})
    assert all(float(jnp.abs(leaf).max()) == 0.0 for leaf in jax.tree.leaves(carry_grad))


def test_adversarial_enabled_is_refused_in_favour_of_input_adversarial():
    config = gfa_config.base_config()
    config.layerwise.enabled = True
    config.adversarial.enabled = True
    with pytest.raises(ValueError, match="input_adversarial"):
        make_objective(config, PaperMLP())


def _layerwise_config(data_dir, epochs):
    config = tiny_config(data_dir, seeds=(0,), strategy="standard", epochs=epochs)
    config.layerwise.enabled = True
    config.layerwise.layers = ("fc2", "fc3")
    return config


def test_train_and_resume_restore_the_carry(tiny_fashion_mnist, tmp_path):
    captured = {}
    config = _layerwise_config(tiny_fashion_mnist, epochs=2)
    train.train_and_evaluate(config, str(tmp_path / "full"), epoch_callback=lambda e, s: captured.__setitem__(e, s))

    class Killed(Exception):
        pass

    def kill_after_epoch_1(epoch, states):
        raise Killed

    with pytest.raises(Killed):
        train.train_and_evaluate(config, str(tmp_path / "resumed"), epoch_callback=kill_after_epoch_1)
    resumed = {}
    train.train_and_evaluate(config, str(tmp_path / "resumed"), epoch_callback=lambda e, s: resumed.__setitem__(e, s))
    assert list(resumed) == [2]
    carry = captured[2].carry["output_grads"]
    assert carry["fc3"].shape == (1, config.batch_size, 10) and float(jnp.abs(carry["fc3"]).max()) > 0
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), captured[2].carry, resumed[2].carry)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), captured[2].params, resumed[2].params)


# ----------------------------------------------------------------------------- the paper's MNIST models


def _params(model, shape):
    return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape))["params"]


def test_4fc_is_three_dense_layers_between_four_unit_layers():
    params = _params(FourFC(), (1, 28, 28, 1))
    assert FourFC().layer_names == ("fc1", "fc2", "fc3")
    assert {k: v["kernel"].shape for k, v in params.items()} == {"fc1": (784, 512), "fc2": (512, 512), "fc3": (512, 10)}
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10


def test_3conv2fc_is_three_convolutions_over_two_dense_layers():
    params = _params(ThreeConvTwoFC(), (1, 28, 28, 1))
    assert ThreeConvTwoFC().layer_names == ("conv1", "conv2", "conv3", "fc1", "fc2")
    shapes = {k: v["kernel"].shape for k, v in params.items()}
    assert shapes == {"conv1": (3, 3, 1, 32), "conv2": (3, 3, 32, 64), "conv3": (3, 3, 64, 64),
                      "fc1": (7 * 7 * 64, 128), "fc2": (128, 10)}
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == 320 + 18_496 + 36_928 + 401_536 + 1_290


@pytest.mark.parametrize("name, classes", [("vgg16_bn_tiny", 10), ("wrn_10_1", 100), ("resnet18_tiny", 10)])
def test_batch_norm_models_are_perturbed_at_every_convolution(name, classes):
    model = get_model(name, num_classes=classes)
    x = jnp.zeros((2, 32, 32, 3))
    chosen = {}

    def choose(variables):  # traced only (eval_shape): the layers need shapes, not values
        params, state = split_variables(variables)
        chosen.update(layerwise.selected_output_shapes(bind(model, state, train=True), params, x, ("conv",)))
        return 0.0

    jax.eval_shape(choose, jax.eval_shape(model.init, jax.random.key(1), x))
    assert list(chosen) == [n for n in model.layer_names if n != "fc"]


# ----------------------------------------------------------------------------- the worst-case table


def test_worst_case_table_has_runs_as_rows_and_the_min_over_attacks_per_seed():
    from gfa_jax.evaluation import report as robustness_report

    robustness = gfa_config.base_config().robustness
    robustness.table_eps_linf = 0.2
    rows = []
    for run, seed, fgsm, pgd, cw in [("dnn", 0, 0.5, 0.3, 0.4), ("dnn", 1, 0.5, 0.5, 0.1), ("all_o", 0, 0.9, 0.8, 0.7)]:
        for attack, accuracy in (("fgsm", fgsm), ("pgd", pgd)):
            rows.append({"run": run, "seed": seed, "attack": attack, "norm": "linf", "eps": 0.0, "accuracy": 0.95})
            rows.append({"run": run, "seed": seed, "attack": attack, "norm": "linf", "eps": 0.2, "accuracy": accuracy})
        rows.append({"run": run, "seed": seed, "attack": "cw_l2", "norm": "l2", "eps": None, "accuracy": cw})
    lines = robustness_report.worst_case_table(rows, robustness, ["dnn", "all_o"]).splitlines()
    assert lines[0] == "| Run | Clean | fgsm | pgd | cw_l2 | Worst case |"
    dnn = [cell.strip() for cell in lines[2].split("|")[1:-1]]
    assert dnn[0] == "dnn" and dnn[1] == "95.00 ± 0.00" and dnn[2] == "50.00 ± 0.00"
    assert dnn[-1] == "{:.2f} ± {:.2f}".format(np.mean([30, 10]), np.std([30, 10], ddof=1))
    assert lines[3].split("|")[-2].strip() == "70.00 ± 0.00"
    with_paper = robustness_report.worst_case_table(rows, robustness, ["dnn", "all_o"],
                                                    {"all_o": {"Clean": 0.98, "pgd": 0.658}}).splitlines()
    assert with_paper[:4] == lines[:4]
    assert with_paper[4] == "| all_o (paper) | 98.00 | - | 65.80 | - | - |"


def test_paper_rows_are_keyed_by_our_models_and_placements():
    from gfa_jax.evaluation.paper_results import layerwise as layerwise_paper_results

    mnist_4fc_layerwise, mnist_3conv2fc_layerwise, cifar_vgg16_layerwise, cifar100_wrn_layerwise = (
        load_config_module(name) for name in ("mnist_4fc_layerwise", "mnist_3conv2fc_layerwise",
                                              "cifar_vgg16_layerwise", "cifar100_wrn_layerwise"))

    for module in (mnist_4fc_layerwise, mnist_3conv2fc_layerwise, cifar_vgg16_layerwise, cifar100_wrn_layerwise):
        for placement in ("standard", "adv_input", *module.PLACEMENTS):
            config = module.get_config(placement)
            row = layerwise_paper_results.paper_accuracy(config.model.name, config.strategy)
            assert row is not None and set(row) == set(layerwise_paper_results.COLUMNS), placement
            assert set(row) - {"Clean"} == set(config.robustness.attacks)
    fixed = mnist_4fc_layerwise.get_config("layer2,fixed")
    assert layerwise_paper_results.paper_accuracy(fixed.model.name, fixed.strategy)["Clean"] == 0.9247


def test_all_w_trains_on_fgsm_inputs_from_config_adversarial():
    config, model, objective = _objective(eps_mode="fixed", input_adversarial=True)
    config.adversarial.attack, config.adversarial.mix_ratio = "fgsm", 1.0
    objective = make_objective(config, model)
    x, y = _batch(0)
    params = model.init(jax.random.key(0), x[:1])["params"]
    carry = objective.init_carry(params, {}, x[:1])
    _, (metrics, _, _) = objective.loss(params, {}, x, y, jax.random.key(1), carry)
    clean = mse_onehot(model.apply({"params": params}, x), y).mean()
    assert float(metrics["task_loss"]) > float(clean)  # zero carry: only the adversarial inputs differ
