"""Multi-seed training and evaluation (Algorithm 1 of DeepDefense for every seed at once).

The library functions here are what ``gfa_jax.main`` calls and what the tests call:
``create_train_state`` -> ``train_step`` (one seed, pure) -> ``make_multiseed_step`` (vmapped, jitted,
sharded) -> ``evaluate`` -> ``train_and_evaluate`` (data, checkpoints, metrics, resume).
"""
from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from gfa_jax import augmentation, checkpoints, data, metrics_io, multiseed
from gfa_jax import config as gfa_config
from gfa_jax.gaie import gaie_alignment
from gfa_jax.gfa import layer_gfa
from gfa_jax.models import get_model
from gfa_jax.objectives import Objective, make_objective

Array = jax.Array

_AUGMENTATION_STREAM = 1  # folded into the step key: the augmentation draws from its own stream


class TrainState(struct.PyTreeNode):
    """What a seed's training needs to continue: checkpointed as a whole.

    ``carry`` is what the objective hands from one step to the next (see :mod:`gfa_jax.objectives`).
    """

    step: Array
    params: Any
    opt_state: Any
    carry: Any


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """optax optimizer from ``config.optimizer`` (name, learning_rate, schedule, warmup_steps, momentum,
    weight_decay; decay_epochs and decay_factor for the multistep schedule, whose epochs are
    ``total_steps / config.num_epochs`` steps long)."""
    opt = config.optimizer
    warmup = opt.warmup_steps
    if warmup < 0:
        raise ValueError(f"optimizer.warmup_steps must be >= 0, got {warmup}.")
    if opt.schedule == "constant":
        learning_rate = optax.constant_schedule(opt.learning_rate)
    elif opt.schedule == "cosine":
        learning_rate = optax.cosine_decay_schedule(opt.learning_rate, max(total_steps - warmup, 1))
    elif opt.schedule == "multistep":
        steps_per_epoch = total_steps // max(config.num_epochs, 1)
        # Boundaries count from step 0 of the run; the schedule after a warm-up starts at `warmup`.
        boundaries = {epoch * steps_per_epoch - warmup: opt.decay_factor for epoch in opt.decay_epochs}
        if any(step <= 0 for step in boundaries):
            raise ValueError(f"optimizer.decay_epochs {tuple(opt.decay_epochs)} must lie after the warm-up.")
        learning_rate = optax.piecewise_constant_schedule(opt.learning_rate, boundaries)
    else:
        raise ValueError(f"Unknown optimizer.schedule {opt.schedule!r}; use 'constant', 'cosine' or 'multistep'.")
    if warmup:  # linear from 0, then the schedule from its start
        learning_rate = optax.join_schedules(
            [optax.linear_schedule(0.0, opt.learning_rate, warmup), learning_rate], [warmup])
    if opt.name == "adam":
        tx = optax.adam(learning_rate)
    elif opt.name == "adamw":
        tx = optax.adamw(learning_rate, weight_decay=opt.weight_decay)
    elif opt.name == "sgd":
        tx = optax.sgd(learning_rate, momentum=opt.momentum or None, nesterov=opt.nesterov)
    else:
        raise ValueError(f"Unknown optimizer.name {opt.name!r}; use 'adam', 'adamw' or 'sgd'.")
    if opt.weight_decay and opt.name != "adamw":
        tx = optax.chain(optax.add_decayed_weights(opt.weight_decay), tx)
    return tx


def make_model(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    return get_model(config.model.name, num_classes=num_classes)


def create_train_state(key: Array, model: nn.Module, tx: optax.GradientTransformation, sample_x: Array,
                       objective: Objective | None = None) -> TrainState:
    params = model.init(key, sample_x)["params"]
    carry = objective.init_carry(params, sample_x) if objective is not None else {}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), carry=carry)


def train_step(
    state: TrainState,
    images: Array,
    labels: Array,
    order: Array,
    epoch_key: Array,
    step_in_epoch: Array,
    *,
    objective: Objective,
    tx: optax.GradientTransformation,
    batch_size: int,
    augment: Callable[[Array, Array], Array] | None = None,
) -> tuple[TrainState, dict[str, Array]]:
    """One optimizer step of one seed on batch ``step_in_epoch`` of its epoch order.

    Args:
      images: the whole training set, uint8 ``[N, H, W, C]`` (on device, shared by the seeds).
      labels: int ``[N]``.
      order: this seed's permutation of ``range(N)`` for the epoch.
      epoch_key: this seed's key for the epoch; the step's key is folded from it.
      augment: ``augment(key, uint8 batch) -> uint8 batch`` (:mod:`gfa_jax.augmentation`), or None.
    """
    index = jax.lax.dynamic_slice_in_dim(order, step_in_epoch * batch_size, batch_size)
    batch = images[index]
    y = labels[index]
    key = jax.random.fold_in(epoch_key, step_in_epoch)
    if augment is not None:  # its own key stream: the objective's key is the same with or without
        batch = augment(jax.random.fold_in(key, _AUGMENTATION_STREAM), batch)
    x = data.to_model_range(batch)
    (loss, (aux, carry)), grads = jax.value_and_grad(objective.loss, has_aux=True)(
        state.params, x, y, key, state.carry)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, carry=carry)
    return new_state, {"loss": loss, **aux}


def make_multiseed_step(objective: Objective, tx: optax.GradientTransformation, batch_size: int,
                        seed_chunk: int | None = None, augment: Callable[[Array, Array], Array] | None = None):
    """All seeds' ``train_step`` as one jitted program: ``(states, images, labels, orders, keys, i)``.

    ``seed_chunk``: see :func:`multiseed.map_seeds` (None: one vmap over all seeds). ``augment``:
    see :func:`train_step`.
    """
    step = functools.partial(train_step, objective=objective, tx=tx, batch_size=batch_size, augment=augment)

    def all_seeds(states, images, labels, orders, keys, step_in_epoch):
        def one_seed(state, order, key):
            return step(state, images, labels, order, key, step_in_epoch)

        return multiseed.map_seeds(one_seed, (states, orders, keys), seed_chunk)

    return jax.jit(all_seeds, donate_argnums=(0,))


def epoch_keys(keys: Array, epoch: int) -> Array:
    """Each seed's key for ``epoch`` ``[S]``: a function of (seed, epoch) alone, so a resumed run
    sees the same data order and randomness as an uninterrupted one."""
    return jax.vmap(lambda k: jax.random.fold_in(k, epoch))(keys)


def epoch_orders(data_keys: Array, epoch: int, num_examples: int) -> Array:
    """Each seed's own permutation of the training set for ``epoch`` ``[S, N]``."""
    return jax.vmap(lambda k: jax.random.permutation(k, num_examples))(epoch_keys(data_keys, epoch))


# ----------------------------------------------------------------------------- evaluation


def eval_batch_stats(params, x: Array, labels: Array, weight: Array, *, model: nn.Module,
                     gaie: bool = False) -> dict[str, Array]:
    """Weighted sums over a batch of correctness, MSE and every layer's GFA (and GFA squared); with
    ``gaie``, also of the GAIE alignment (:func:`gfa_jax.gaie.gaie_alignment`) and its square."""
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
    stats_fn = jax.jit(lambda params, x, labels, weight: multiseed.map_seeds(
        lambda p: batch_stats(p, x, labels, weight), (params,), seed_chunk))

    def evaluate(params, images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
        n = len(labels)
        padded = -(-n // batch_size) * batch_size
        weight = np.zeros(padded, np.float32)
        weight[:n] = 1.0
        images = np.concatenate([images, np.zeros((padded - n,) + images.shape[1:], images.dtype)])
        labels = np.concatenate([labels, np.zeros(padded - n, labels.dtype)])
        totals = None
        for start in range(0, padded, batch_size):
            batch = slice(start, start + batch_size)
            stats = stats_fn(params, data.to_model_range(jnp.asarray(images[batch])),
                             jnp.asarray(labels[batch]), jnp.asarray(weight[batch]))
            totals = stats if totals is None else jax.tree.map(jnp.add, totals, stats)
        totals = jax.device_get(totals)
        count = totals["count"]
        result = {"accuracy": totals["correct"] / count, "mse": totals["mse"] / count}
        for name in model.layer_names:
            result[f"gfa/{name}/mean"], result[f"gfa/{name}/std"] = _mean_and_std(
                totals[f"gfa/{name}"], totals[f"gfa_sq/{name}"], count)
        if gaie:
            result["gaie/mean"], result["gaie/std"] = _mean_and_std(totals["gaie"], totals["gaie_sq"], count)
        return result

    return evaluate


# ----------------------------------------------------------------------------- the whole run


def _check_finite(train_metrics: dict[str, np.ndarray], seeds, epoch: int, step: int) -> None:
    loss = np.asarray(train_metrics["loss"])
    bad = [seed for seed, value in zip(seeds, loss) if not np.isfinite(value)]
    if bad:
        raise FloatingPointError(
            f"Loss is {loss.tolist()} (non-finite for seeds {bad}) at epoch {epoch}, step {step}. "
            "Lower --config.optimizer.learning_rate or the GFA weights --config.gfa.beta, "
            "then start again in a new --workdir (the last good checkpoint is kept)."
        )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, epoch_callback=None) -> dict:
    """Train every seed of ``config`` and evaluate each epoch; resumes from ``workdir`` if it holds a run.

    Writes ``config.json``, ``metrics.jsonl`` (a line per seed, epoch and split), ``summary.json``
    (mean +/- std over seeds of the last epoch) and Orbax checkpoints under ``checkpoints/``.

    Args:
      epoch_callback: optional ``fn(epoch, states)`` called after each epoch's checkpoint is saved
        (tests use it to interrupt a run).

    Returns:
      the summary dict written to ``summary.json``.
    """
    gfa_config.validate(config)
    run_dir = metrics_io.prepare_workdir(workdir, config)
    dataset = data.load_dataset(
        config.data.name, source=config.data.source, data_dir=config.data.data_dir,
        train_size=config.data.train_size, test_size=config.data.test_size, download=config.data.download,
    )
    logging.info("Data: %s (%d train, %d test) from %s", dataset.name, len(dataset.train_labels),
                 len(dataset.test_labels), dataset.source)
    seeds = tuple(int(s) for s in config.seeds)
    num_train = len(dataset.train_labels)
    steps_per_epoch = num_train // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {num_train} training examples.")

    model = make_model(config, dataset.num_classes)
    tx = make_optimizer(config, steps_per_epoch * config.num_epochs)
    mesh = multiseed.seed_mesh(len(seeds))
    sample_x = data.to_model_range(jnp.asarray(dataset.train_images[:1]))
    objective = make_objective(config, model)
    init_keys = multiseed.seed_keys(seeds, purpose=0)
    states = jax.jit(jax.vmap(lambda k: create_train_state(k, model, tx, sample_x, objective)))(init_keys)
    states = multiseed.shard_seeds(states, mesh)

    manager = checkpoints.make_manager(run_dir.checkpoints, max_to_keep=config.checkpoint.max_to_keep)
    start_epoch, states = checkpoints.restore_latest(manager, states)
    records = metrics_io.load_records(run_dir.metrics, up_to_epoch=start_epoch)
    if start_epoch:
        logging.info("Resuming from the checkpoint of epoch %d in %s", start_epoch, run_dir.checkpoints)

    images = jax.device_put(dataset.train_images, multiseed.replicated(mesh))
    labels = jax.device_put(dataset.train_labels, multiseed.replicated(mesh))
    data_keys = multiseed.seed_keys(seeds, purpose=1)
    step_keys = multiseed.seed_keys(seeds, purpose=2)
    seed_chunk = multiseed.seeds_per_vmap(config.seeds_per_vmap, mesh, multiseed.unstack(states.params, 0))
    step_fn = make_multiseed_step(objective, tx, config.batch_size, seed_chunk,
                                  augment=augmentation.get_augmentation(config.data.augmentation))
    evaluate = make_evaluator(model, config.eval.batch_size, gaie=bool(config.gaie.weight), seed_chunk=seed_chunk)
    train_eval_index = np.random.default_rng(0).permutation(num_train)[: config.eval.train_samples or num_train]

    progress = metrics_io.progress_bar(total=steps_per_epoch * config.num_epochs,
                                       initial=steps_per_epoch * start_epoch, desc=config.name)
    for epoch in range(start_epoch + 1, config.num_epochs + 1):
        started = time.perf_counter()
        orders = multiseed.shard_seeds(epoch_orders(data_keys, epoch, num_train), mesh)
        keys = multiseed.shard_seeds(epoch_keys(step_keys, epoch), mesh)
        step_metrics = []
        for i in range(steps_per_epoch):
            states, metrics = step_fn(states, images, labels, orders, keys, i)
            step_metrics.append(metrics)
            progress.update(1)
            if (i + 1) % config.log_every_steps == 0 or i + 1 == steps_per_epoch:
                latest = jax.device_get(metrics)
                _check_finite(latest, seeds, epoch, i)
                progress.set_postfix(loss=f"{float(np.mean(latest['loss'])):.4f}")
        train_metrics = jax.device_get(jax.tree.map(lambda *m: jnp.mean(jnp.stack(m), 0), *step_metrics))
        train_seconds = time.perf_counter() - started

        evaluations = {"test": evaluate(states.params, dataset.test_images, dataset.test_labels)}
        if epoch % config.eval.train_gfa_every_epochs == 0 or epoch == config.num_epochs:
            evaluations["train"] = evaluate(states.params, dataset.train_images[train_eval_index],
                                            dataset.train_labels[train_eval_index])
        records += metrics_io.epoch_records(epoch, seeds, train_metrics, evaluations, train_seconds)
        # Metrics before the checkpoint: a run killed in between redoes the epoch and drops its lines.
        metrics_io.write_records(run_dir.metrics, records)
        checkpoints.save(manager, epoch, states)
        progress.write(metrics_io.epoch_line(epoch, evaluations))
        if epoch_callback is not None:
            epoch_callback(epoch, states)
    progress.close()
    manager.wait_until_finished()

    summary = metrics_io.summarize(records, config, seeds, model.layer_names, dataset)
    metrics_io.write_json(run_dir.summary, summary)
    return summary
