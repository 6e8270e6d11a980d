"""ADV: adversarial training on a mix of clean and adversarial inputs (DeepDefense's Table 1-2 baseline).

Madry et al., 'Towards Deep Learning Models Resistant to Adversarial Attacks', ICLR 2018
[https://arxiv.org/abs/1706.06083]: minimise the loss on the worst case in an eps ball,

    min_theta E_(x,y) [ max_{||delta||_inf <= eps} L(f_theta(x + delta), y) ],

the inner max approximated by an attack (PGD with a random start) on the current parameters. As in
DeepDefense's ADV ("a mix of clean and PGD-generated adversarial examples", Section 4.2) only a
fraction ``mix_ratio`` of each batch is replaced by its adversarial version:

    x_train = concat(A(x[:m]), x[m:]),   m = round(mix_ratio * B),

with ``A`` the attack and the labels unchanged. The attack is a data generator, not part of the
model: its parameters and its output carry no gradient (``jax.lax.stop_gradient``), so the update is
the gradient of the training loss at a fixed mixed batch (Danskin's theorem, as in Madry et al.).
"""
from __future__ import annotations

import inspect

import flax.linen as nn
import jax
import jax.numpy as jnp

from gfa_jax import attacks, data

Array = jax.Array

# By default the attack ascends the very loss the update descends (config.task_loss; every gradient
# attack of the library accepts both), which is Madry et al.'s min-max objective.
DEFAULT_LOSS = "mse"


def adversarial_count(batch_size: int, mix_ratio: float) -> int:
    """How many samples of a batch are replaced: ``round(mix_ratio * batch_size)`` (static)."""
    if not 0.0 <= mix_ratio <= 1.0:
        raise ValueError(f"adversarial.mix_ratio must lie in [0, 1], got {mix_ratio}.")
    return round(mix_ratio * batch_size)


def _attack_kwargs(attack_fn, eps: float, steps: int, loss: str) -> dict:
    # Single-step attacks (fgsm, ffgsm) take no ``steps``; every attack takes ``eps`` and ``loss``.
    kwargs = {"eps": eps, "loss": loss, "bounds": data.MODEL_INPUT_BOUNDS}
    if "steps" in inspect.signature(attack_fn).parameters:
        kwargs["steps"] = steps
    return kwargs


def adversarial_inputs(
    params,
    x: Array,
    y: Array,
    key: Array,
    *,
    model: nn.Module,
    attack: str,
    eps: float,
    steps: int,
    mix_ratio: float,
    loss: str = DEFAULT_LOSS,
) -> tuple[Array, Array]:
    """The batch ADV trains on: its first ``round(mix_ratio * B)`` samples replaced by adversarials.

    The replaced samples are the *first* ones so the split is static (one compiled program); batches
    are drawn from a fresh random permutation every epoch, so which samples are attacked is random.

    Args:
      params: the current model parameters (the attack sees them; no gradient flows through it).
      x: inputs ``[B, ...]`` in [-1, 1]; y: integer labels ``[B]``.
      key: this step's PRNG key (the attack's random start).
      model: the Flax model; attack: a name in ``attacks.REGISTRY`` (a bounded attack, e.g. "pgd").
      eps: the attack's radius in model-input units; steps: its iterations (ignored by one-step ones).
      mix_ratio: static fraction of the batch replaced, in [0, 1].
      loss: the per-sample loss the attack ascends (the training's ``config.task_loss``).

    Returns:
      ``(x_train, y)``: the mixed batch (same shape and dtype as ``x``) and the unchanged labels.
    """
    count = adversarial_count(x.shape[0], mix_ratio)
    if count == 0:
        return x, y
    spec = attacks.get_attack(attack)
    if spec.kind != "bounded":
        raise ValueError(f"Adversarial training needs a bounded attack; {attack!r} is {spec.kind}.")
    frozen = jax.lax.stop_gradient(params)

    def logits_fn(inputs):
        return model.apply({"params": frozen}, inputs)

    x_adv = spec.fn(logits_fn, x[:count], y[:count], key, **_attack_kwargs(spec.fn, eps, steps, loss))
    return jnp.concatenate([jax.lax.stop_gradient(x_adv), x[count:]]), y
