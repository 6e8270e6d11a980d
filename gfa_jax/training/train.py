"""The whole training run: every seed of a config trained and evaluated each epoch, with resume.

``train_and_evaluate`` is what ``gfa_jax.main`` calls: data, the model, the objective, the stacked
train states, the jitted multi-seed step (:mod:`gfa_jax.training.train_step`), per-epoch evaluation
(:mod:`gfa_jax.training.evaluator`), metrics and Orbax checkpoints in the workdir.
"""
from __future__ import annotations

import logging
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gfa_jax import config as gfa_config
from gfa_jax import augmentation, console, data, files, hyperparameters
from gfa_jax.training import checkpoints, distributed, metrics, multiseed
from gfa_jax.training import workdir as workdir_lib
from gfa_jax.training.evaluator import make_evaluator
from gfa_jax.training.train_state import make_model
from gfa_jax.training.train_step import epoch_keys, epoch_orders, init_members, make_multiseed_step, make_recipe

logger = logging.getLogger(__name__)


def _check_finite(train_metrics: dict[str, np.ndarray], members: hyperparameters.Members, epoch: int,
                  step: int) -> None:
    loss = np.asarray(train_metrics["loss"])
    bad = [members.label(i) for i, value in enumerate(loss) if not np.isfinite(value)]
    if bad:
        raise FloatingPointError(
            f"Loss is {loss.tolist()} (non-finite for {', '.join(bad)}) at epoch {epoch}, step {step}. "
            "Lower --config.optimizer.learning_rate or the GFA weights --config.gfa.beta, "
            "then start again in a new --workdir (the last good checkpoint is kept)."
        )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, epoch_callback=None) -> dict:
    """Train every member of ``config`` and evaluate each epoch; resumes from ``workdir`` if it holds a run.

    The members are the seeds, under every setting of ``config.sweep.axes`` when it sweeps
    hyperparameters in-program (:mod:`gfa_jax.hyperparameters`). Writes ``config.json``,
    ``metrics.jsonl`` (a line per member, epoch and split), ``summary.json`` (mean +/- std over seeds
    of the last epoch, per setting) and Orbax checkpoints under ``checkpoints/``.

    Args:
      epoch_callback: optional ``fn(epoch, states)`` called after each epoch's checkpoint is saved
        (tests use it to interrupt a run).

    Returns:
      the summary dict written to ``summary.json``.
    """
    gfa_config.validate(config)
    run_dir = workdir_lib.prepare_workdir(workdir, config)
    dataset = data.load_dataset(
        config.data.name, source=config.data.source, data_dir=config.data.data_dir,
        train_size=config.data.train_size, test_size=config.data.test_size, download=config.data.download,
    )
    logger.info("Data: %s (%d train, %d test) from %s", dataset.name, len(dataset.train_labels),
                 len(dataset.test_labels), dataset.source)
    axes = hyperparameters.parse_axes(config.sweep.axes)
    members = hyperparameters.members(config.seeds, axes)
    num_train = len(dataset.train_labels)
    steps_per_epoch = num_train // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {num_train} training examples.")

    model = make_model(config, dataset.num_classes)
    recipe = make_recipe(config, model, steps_per_epoch * config.num_epochs, steps_per_epoch)
    mesh = distributed.member_mesh(len(members))
    sample_x = data.to_model_range(jnp.asarray(dataset.train_images[:1]))
    init_keys = multiseed.seed_keys(members.seeds, purpose=0)
    states = init_members(recipe, model, sample_x, init_keys, members.hyper)
    states = distributed.put_members(states, mesh)
    hyper = distributed.put_members(members.hyper, mesh)

    manager = checkpoints.make_manager(run_dir.checkpoints, max_to_keep=config.checkpoint.max_to_keep)
    start_epoch, states = checkpoints.restore_latest(manager, states)
    records = metrics.load_records(run_dir.metrics, up_to_epoch=start_epoch)

    images = distributed.put_replicated(dataset.train_images, mesh)
    labels = distributed.put_replicated(dataset.train_labels, mesh)
    data_keys = multiseed.seed_keys(members.seeds, purpose=1)
    step_keys = multiseed.seed_keys(members.seeds, purpose=2)
    seed_chunk = multiseed.seeds_per_vmap(config.seeds_per_vmap, mesh, multiseed.unstack(states.params, 0))
    step_fn = make_multiseed_step(recipe, config.batch_size, seed_chunk,
                                  augment=augmentation.get_augmentation(config.data.augmentation))
    gaie = bool(config.gaie.weight) or "gaie.weight" in axes
    evaluate = make_evaluator(model, config.eval.batch_size, gaie=gaie, seed_chunk=seed_chunk)
    train_eval_index = np.random.default_rng(0).permutation(num_train)[: config.eval.train_samples or num_train]

    progress = console.progress_bar(total=steps_per_epoch * config.num_epochs,
                                    initial=steps_per_epoch * start_epoch, desc=config.name,
                                    disable=not distributed.is_writer())
    if start_epoch and distributed.is_writer():
        progress.write(f"Resuming {config.name} from the checkpoint of epoch {start_epoch} in {run_dir.checkpoints}")
    try:
        for epoch in range(start_epoch + 1, config.num_epochs + 1):
            started = time.perf_counter()
            orders = distributed.put_members(epoch_orders(data_keys, epoch, num_train), mesh)
            keys = distributed.put_members(epoch_keys(step_keys, epoch), mesh)
            step_metrics = []
            for i in range(steps_per_epoch):
                states, batch_metrics = step_fn(states, hyper, images, labels, orders, keys, i)
                step_metrics.append(batch_metrics)
                progress.update(1)
                if (i + 1) % config.log_every_steps == 0 or i + 1 == steps_per_epoch:
                    latest = distributed.fetch(batch_metrics)
                    _check_finite(latest, members, epoch, i)
                    progress.set_postfix(loss=f"{float(np.mean(latest['loss'])):.4f}")
            train_metrics = distributed.fetch(jax.tree.map(lambda *m: jnp.mean(jnp.stack(m), 0), *step_metrics))
            train_seconds = time.perf_counter() - started

            evaluations = {"test": evaluate(states.params, states.model_state, dataset.test_images, dataset.test_labels)}
            if epoch % config.eval.train_gfa_every_epochs == 0 or epoch == config.num_epochs:
                evaluations["train"] = evaluate(states.params, states.model_state, dataset.train_images[train_eval_index],
                                                dataset.train_labels[train_eval_index])
            records += metrics.epoch_records(epoch, members, train_metrics, evaluations, train_seconds)
            # Metrics before the checkpoint: a run killed in between redoes the epoch and drops its lines.
            if distributed.is_writer():
                metrics.write_records(run_dir.metrics, records)
            checkpoints.save(manager, epoch, states)
            if distributed.is_writer():
                progress.write(metrics.epoch_line(epoch, evaluations, members))
            if epoch_callback is not None:
                epoch_callback(epoch, states)
    finally:  # a run stopped by an error or Ctrl-C still finishes writing its last checkpoint
        progress.close()
        manager.wait_until_finished()

    summary = metrics.summarize(records, config, axes, model.layer_names, dataset)
    if distributed.is_writer():
        files.write_json(run_dir.summary, summary)
    return summary
