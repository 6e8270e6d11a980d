"""Per-epoch evaluation of every seed: accuracy, MSE and each layer's GFA (and GAIE) over a split."""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gfa_jax import data
from gfa_jax.defenses.gaie import gaie_alignment
from gfa_jax.defenses.gfa import layer_gfa
from gfa_jax.models.state import bind
from gfa_jax.training import distributed, multiseed

Array = jax.Array


def eval_batch_stats(params, model_state, x: Array, labels: Array, weight: Array, *, model: nn.Module,
                     gaie: bool = False) -> dict[str, Array]:
    """Weighted sums over a batch of correctness, MSE and every layer's GFA (and GFA squared); with
    ``gaie``, also of the GAIE alignment (:func:`gfa_jax.defenses.gaie.gaie_alignment`) and its square.
    The model runs in inference mode (batch norm by its running averages)."""
    model = bind(model, model_state, train=False)
    per_sample, logits, gfa = layer_gfa(model, params, x, labels, model.layer_names)
    stats = {
        "count": weight.sum(),
        "correct": jnp.sum(weight * (jnp.argmax(logits, -1) == labels)),
        "mse": jnp.sum(weight * per_sample),
    }
    for name, values in gfa.items():
        stats[f"gfa/{name}"] = jnp.sum(weight * values)
        stats[f"gfa_sq/{name}"] = jnp.sum(weight * values**2)
    if gaie:
        values = gaie_alignment(params, x, labels, model=model)
        stats["gaie"] = jnp.sum(weight * values)
        stats["gaie_sq"] = jnp.sum(weight * values**2)
    return stats


def _mean_and_std(total, total_of_squares, count):
    """Per-sample mean and std from weighted sums of values and of their squares."""
    mean = total / count
    return mean, np.sqrt(np.maximum(total_of_squares / count - mean**2, 0.0))


def make_evaluator(model: nn.Module, batch_size: int, *, gaie: bool = False, seed_chunk: int | None = None):
    """``evaluate(stacked_params, images_u8, labels) -> {metric: [S]}`` over a whole split.

    Returns per seed: accuracy, mse, and for every layer the mean and per-sample std of GFA (with
    ``gaie``, those of GAIE too, as ``gaie/mean`` and ``gaie/std``).
    """
    batch_stats = functools.partial(eval_batch_stats, model=model, gaie=gaie)
    stats_fn = jax.jit(lambda params, model_state, x, labels, weight: multiseed.map_seeds(
        lambda p, s: batch_stats(p, s, x, labels, weight), (params, model_state), seed_chunk))

    def evaluate(params, model_state, images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
        n = len(labels)
        padded = -(-n // batch_size) * batch_size
        weight = np.zeros(padded, np.float32)
        weight[:n] = 1.0
        images = np.concatenate([images, np.zeros((padded - n,) + images.shape[1:], images.dtype)])
        labels = np.concatenate([labels, np.zeros(padded - n, labels.dtype)])
        totals = None
        for start in range(0, padded, batch_size):
            batch = slice(start, start + batch_size)
            stats = stats_fn(params, model_state, data.to_model_range(jnp.asarray(images[batch])),
                             jnp.asarray(labels[batch]), jnp.asarray(weight[batch]))
            totals = stats if totals is None else jax.tree.map(jnp.add, totals, stats)
        totals = distributed.fetch(totals)  # [S] per stat, gathered from every process
        count = totals["count"]
        result = {"accuracy": totals["correct"] / count, "mse": totals["mse"] / count}
        for name in model.layer_names:
            result[f"gfa/{name}/mean"], result[f"gfa/{name}/std"] = _mean_and_std(
                totals[f"gfa/{name}"], totals[f"gfa_sq/{name}"], count)
        if gaie:
            result["gaie/mean"], result["gaie/std"] = _mean_and_std(totals["gaie"], totals["gaie_sq"], count)
        return result

    return evaluate
