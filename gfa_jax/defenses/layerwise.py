"""Layer-wise adversarial training (Chen & Zhang, ``layerwise-adversarial-training.md``).

During training, chosen Dense / Conv layers' outputs ``y = A x + b`` get an adversarial perturbation
``R`` computed from the loss gradient ``g = dL/dy`` of the *previous* batch (Algorithm 1, lines 4-8);
at test time nothing is added (line 10): evaluation calls the plain ``model.apply``.

Reading of eqs. 5-9
-------------------
The paper's claim is an equivalence: adding ``R`` to a layer's output ``y = A x + b`` is training
on ``x + r`` with the FGSM perturbation ``r = eps * sign(dL/dx)`` of the layer input (eq. 5 with
eq. 1), so ``R = A r``. Its closed form ``eps * |W| . sign(dL/dy)`` (eq. 6, FC; eq. 7 stacked; eqs.
8-9 for convolutions, ``*`` and the Hadamard product) uses ``sign(dL/dy . W) = sign(W) (.)
sign(dL/dy)``, which holds only when ``dL/dy`` is a scalar, i.e. for ONE output unit, and leaves
open how the input dimension is reduced. Two readings are implemented (``config.layerwise.form``):

``input_fgsm`` (the default): the equivalence itself, eq. 5 with eq. 1, for any number of outputs::

    R = A r,   r = eps * sign(dL/dx) = eps * sign(A^T g),   g = dL/dy

the exact change of the output that FGSM with L-inf size ``eps`` on the layer input causes (one
transposed and one forward linear map of the layer; for a convolution, eq. 9's ``w * sign(...)``
composition for one layer). With one output unit it is eq. 6 exactly:
``A r = eps * sign(g) * sum_i |A_i|``.

``per_unit``: eq. 6's closed form applied to each output unit ``j`` on its own::

    R_j = eps * sign(g_j) * sum_i |A_ji|        i.e.   R = eps * sign(g) (.) (|A| 1)

(for a convolution ``|A| 1`` is the convolution of an all-ones input with ``|w|``). ``R_j`` is
``(A r^(j))_j`` for ``r^(j)`` aimed at unit ``j`` alone, so every unit gets its own worst case: it
bounds ``|(A r)_j|`` from above and equals ``A r`` only with one output unit. With many units it is
far stronger than any single input perturbation (a 512-unit hidden layer at eps 0.1 gets shifts of
about 2 per unit at initialisation), and on MNIST 4FC it keeps clean accuracy near 60 % (FC Layer-4)
or chance (FC-3&4) where the paper reports 93-97 %; hence not the default.

Each chosen layer is treated on its own, with its own input as "x" and ``eps`` in that input's
units: eq. 7's product over the preceding layers (and eq. 9's chained signs) is not formed
explicitly. Perturbations of earlier chosen layers still travel through the later layers (and
their ReLU masks, eq. 14) in the forward pass, which is how the paper's "passed as an initial value"
composition arises here.

``eps`` is fixed or drawn from ``N(0, eps)`` once per step from the step key (Section IV-A-1); as in
input adversarial training, ``r`` is a constant of the step and the gradient flows through ``A`` in
``A r`` (the paper's regularisation reading of eq. 6), not through the carried ``g``.

The carry and its cost
----------------------
``carry["output_grads"]`` maps each chosen layer (its module path joined with ``.``) to
``dL/dy`` of the previous batch, per sample ``[batch_size, *output_shape]`` (zeros at step 0, so
the first step is a regular pass: Algorithm 1, line 3). The new carry comes from the same
forward/backward pass as the parameter gradient: a zero "probe" is added to each chosen output and
the loss is differentiated with respect to (params, probes) at once; the objective returns a
surrogate whose value is the loss and whose parameter gradient is that gradient
(:func:`value_with_gradient`), so a layer-wise step costs one forward and one backward pass plus the
perturbation's extra linear maps (one ``|A|`` map of a single all-ones sample per layer).

All-w (Tables VII-IX): ``layerwise.input_adversarial`` trains on inputs from the attack of
``config.adversarial`` (:func:`gfa_jax.defenses.adversarial_training.adversarial_inputs`), generated on the
unperturbed model; ``adversarial.enabled`` must then stay False so the base objective does not
attack again under the layer perturbations.
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gfa_jax import hyperparameters
from gfa_jax.defenses import adversarial_training
from gfa_jax.defenses.objective import Objective
from gfa_jax.hyperparameters import Hyper
from gfa_jax.models.state import bind

Array = jax.Array

LAYER_GROUPS: dict[str, tuple[type[nn.Module], ...]] = {
    "all": (nn.Dense, nn.Conv),
    "dense": (nn.Dense,),
    "conv": (nn.Conv,),
}
FORMS = ("input_fgsm", "per_unit")
EPS_MODES = ("fixed", "random")
_PATH_SEPARATOR = "."  # carry keys: Orbax writes dict keys as path components, so no "/"


# ----------------------------------------------------------------------------- the perturbation


def unit_reach(abs_linear_map: Callable[[Array], Array], input_shape: Sequence[int]) -> Array:
    """``|A| 1`` with batch 1: per output unit, the sum of the absolute weights over its inputs.

    ``abs_linear_map`` is the layer's bias-free map with ``|kernel|`` (``u @ |W|`` for Dense, the
    convolution with ``|w|`` for Conv); ``input_shape`` is the layer input's, batch first.
    """
    return abs_linear_map(jnp.ones((1,) + tuple(input_shape[1:])))


def per_unit_perturbation(abs_linear_map: Callable[[Array], Array], input_shape: Sequence[int],
                          output_grad: Array, eps: Array | float) -> Array:
    """Eq. 6's closed form per output unit (Dense; eq. 8 for Conv): ``R = eps * sign(dL/dy) (.) (|A| 1)``."""
    return eps * jnp.sign(output_grad) * unit_reach(abs_linear_map, input_shape)


def input_fgsm_perturbation(linear_map: Callable[[Array], Array], layer_input: Array,
                            output_grad: Array, eps: Array | float) -> Array:
    """Eq. 5 with eq. 1: ``R = A r``, ``r = eps * sign(dL/dx) = eps * sign(A^T dL/dy)``."""
    _, transpose = jax.vjp(linear_map, jnp.zeros_like(layer_input))
    (input_grad,) = transpose(output_grad.astype(layer_input.dtype))
    return linear_map(eps * jnp.sign(input_grad))


def dense_perturbation(kernel: Array, output_grad: Array, eps: Array | float, input_shape: Sequence[int]) -> Array:
    """``per_unit`` for a Flax Dense kernel ``[in, out]``: ``eps * sign(g) * sum_i |W_ij|``."""
    return per_unit_perturbation(lambda u: u @ jnp.abs(kernel), input_shape, output_grad, eps)


def bias_free_linear_map(module: nn.Module, kernel: Array) -> Callable[[Array], Array]:
    """``u -> A u``: the Dense / Conv ``module``'s own operation (strides, padding, ...) with
    ``kernel`` and no bias."""
    linear = module.clone(parent=None, use_bias=False)
    return lambda u: linear.apply({"params": {"kernel": kernel}}, u)


def layer_perturbation(module: nn.Module, layer_input: Array, output_grad: Array, eps: Array | float,
                       form: str = "input_fgsm") -> Array:
    """The perturbation of ``module``'s output (``form``: ``input_fgsm`` or ``per_unit``, see above)."""
    kernel = module.get_variable("params", "kernel")
    if form == "per_unit":
        return per_unit_perturbation(bias_free_linear_map(module, jnp.abs(kernel)), layer_input.shape, output_grad, eps)
    if form == "input_fgsm":
        return input_fgsm_perturbation(bias_free_linear_map(module, kernel), layer_input, output_grad, eps)
    raise ValueError(f"Unknown layerwise.form {form!r}; choose one of {FORMS}.")


def sample_eps(key: Array, eps: float, mode: str) -> Array:
    """This step's eps: ``eps`` (``fixed``) or a draw from ``N(0, eps)`` (``random``, Table I)."""
    if mode == "fixed":
        return jnp.asarray(eps, jnp.float32)
    if mode == "random":
        return eps * jax.random.normal(key, (), jnp.float32)
    raise ValueError(f"Unknown layerwise.eps_mode {mode!r}; choose one of {EPS_MODES}.")


# ----------------------------------------------------------------------------- choosing layers


def layer_key(module: nn.Module) -> str:
    """The carry key of a layer: its module path joined with ``.`` (``"fc1"``, ``"block1.conv"``)."""
    return _PATH_SEPARATOR.join(module.path)


def is_selected(module: nn.Module, selection: Sequence[str]) -> bool:
    """Whether a Dense / Conv ``module`` is chosen by ``selection``.

    Entries: a group (``all``, ``dense``, ``conv``), a module name or path (``fc1``, ``block1/conv``,
    ``block1.conv``); ``!entry`` excludes what ``entry`` matches (``("all", "!conv1")``).
    """
    if not isinstance(module, LAYER_GROUPS["all"]):
        return False
    names = {module.name, "/".join(module.path), layer_key(module)}

    def matches(entry: str) -> bool:
        return isinstance(module, LAYER_GROUPS[entry]) if entry in LAYER_GROUPS else entry in names

    included = any(matches(e) for e in selection if not e.startswith("!"))
    return included and not any(matches(e[1:]) for e in selection if e.startswith("!"))


def layer_interceptor(selection: Sequence[str], transform: Callable[[nn.Module, Array, Array], Array]):
    """An ``nn.intercept_methods`` interceptor applying ``transform(module, layer_input, output)``
    to the output of every chosen Dense / Conv ``__call__``; everything else runs unchanged, and
    so do the module calls ``transform`` itself makes (the perturbation's linear maps)."""
    transforming = []

    def transform_selected_layers(next_fun, args, kwargs, context):
        output = next_fun(*args, **kwargs)
        if transforming or context.method_name != "__call__" or not is_selected(context.module, selection):
            return output
        transforming.append(context.module)
        try:
            return transform(context.module, args[0], output)
        finally:
            transforming.pop()

    return transform_selected_layers


def selected_output_shapes(model: nn.Module, params, x: Array, selection: Sequence[str]) -> dict[str, jax.ShapeDtypeStruct]:
    """``{layer key: output shape}`` of the chosen layers on inputs like ``x`` (no computation).

    Raises ``ValueError`` when an explicitly named layer does not exist or nothing is chosen.
    """
    chosen, every_layer = {}, []

    def record(module, layer_input, output):
        chosen[layer_key(module)] = jax.ShapeDtypeStruct(output.shape, output.dtype)
        return output

    def record_all(module, layer_input, output):
        every_layer.append(layer_key(module))
        return output

    def apply(p, inputs):
        with nn.intercept_methods(layer_interceptor(selection, record)), \
                nn.intercept_methods(layer_interceptor(("all",), record_all)):
            return model.apply({"params": p}, inputs)

    jax.eval_shape(apply, params, x)
    known = set(every_layer) | {k.replace(_PATH_SEPARATOR, "/") for k in every_layer} | {k.split(_PATH_SEPARATOR)[-1] for k in every_layer}
    unknown = [e.lstrip("!") for e in selection if e.lstrip("!") not in LAYER_GROUPS and e.lstrip("!") not in known]
    if unknown or not chosen:
        raise ValueError(f"layerwise.layers {tuple(selection)} " + (f"names unknown layer(s) {unknown}" if unknown else
                         "chooses no layer") + f"; the model's Dense/Conv layers are {every_layer} "
                         f"(groups: {sorted(LAYER_GROUPS)}; '!name' excludes).")
    return chosen


# ----------------------------------------------------------------------------- the objective


def value_with_gradient(value: Array, params, grads) -> Array:
    """A scalar equal to ``value`` whose gradient with respect to ``params`` is ``grads``:
    ``sg(value) + sum <params - sg(params), sg(grads)>`` (the second term is 0 in value)."""
    sg = jax.lax.stop_gradient
    tangent = sum(jnp.vdot(p - sg(p), sg(g)) for p, g in zip(jax.tree.leaves(params), jax.tree.leaves(grads)))
    return sg(value) + tangent


def make_layerwise_objective(config: ml_collections.ConfigDict, model: nn.Module, objective: Objective,
                             hyper: Hyper | None = None) -> Objective:
    """``objective`` evaluated with layer-wise adversarial perturbations (Algorithm 1).

    The carry is ``{"output_grads": {layer: dL/dy of the previous batch}, "base": objective's}``.
    ``hyper``: a member's swept values (``layerwise.eps``, ``adversarial.eps``), see
    :mod:`gfa_jax.hyperparameters`.
    """
    settings = config.layerwise
    layer_eps = hyperparameters.value(config, hyper, "layerwise.eps")
    selection = tuple(settings.layers)
    if settings.form not in FORMS:
        raise ValueError(f"Unknown layerwise.form {settings.form!r}; choose one of {FORMS}.")
    sample_eps(jax.random.key(0), settings.eps, settings.eps_mode)  # validates eps_mode early
    if config.adversarial.enabled:
        raise ValueError("adversarial.enabled would generate attacks under the layer perturbations; "
                         "use layerwise.input_adversarial=True for input adversarial training (All-w).")

    def init_carry(params, model_state, sample_x):
        batch_x = jnp.zeros((config.batch_size,) + sample_x.shape[1:], sample_x.dtype)
        shapes = selected_output_shapes(bind(model, model_state, train=True), params, batch_x, selection)
        output_grads = {key: jnp.zeros(s.shape, s.dtype) for key, s in shapes.items()}
        return {"output_grads": output_grads, "base": objective.init_carry(params, model_state, sample_x)}

    def loss(params, model_state, x, y, key, carry):
        base_key, eps_key, attack_key = jax.random.split(key, 3)
        eps = sample_eps(eps_key, layer_eps, settings.eps_mode)
        if settings.input_adversarial:
            attack = {k: v for k, v in config.adversarial.items() if k not in ("enabled", "model_mode")}
            attack["eps"] = hyperparameters.value(config, hyper, "adversarial.eps")
            attack_model = bind(model, model_state, train=config.adversarial.model_mode == "train")
            x, y = adversarial_training.adversarial_inputs(params, x, y, attack_key, model=attack_model,
                                                           loss=config.task_loss, **attack)
        previous = carry["output_grads"]

        def perturbed_loss(params, probes):
            def add_perturbation(module, layer_input, output):
                key = layer_key(module)
                if output.shape != previous[key].shape:
                    raise ValueError(f"Layer {key} outputs {output.shape} but the carried gradient is "
                                     f"{previous[key].shape}: layer-wise training needs batches of "
                                     f"config.batch_size ({config.batch_size}).")
                perturbation = layer_perturbation(module, layer_input, previous[key], eps, settings.form)
                return output + perturbation.astype(output.dtype) + probes[key]

            with nn.intercept_methods(layer_interceptor(selection, add_perturbation)):
                return objective.loss(params, model_state, x, y, base_key, carry["base"])

        probes = jax.tree.map(jnp.zeros_like, previous)
        (value, (metrics, base_carry, new_model_state)), (param_grads, output_grads) = jax.value_and_grad(
            perturbed_loss, argnums=(0, 1), has_aux=True)(jax.lax.stop_gradient(params), probes)
        new_carry = {"output_grads": jax.lax.stop_gradient(output_grads), "base": base_carry}
        metrics = {**metrics, "layerwise/eps": eps}
        return value_with_gradient(value, params, param_grads), (metrics, new_carry, new_model_state)

    return Objective(loss, init_carry)
