"""Trained runs loaded from their workdirs, and the test samples a comparison of runs attacks.

A :class:`TrainedRun` holds the stacked parameters of every seed of one training run;
:func:`select_samples` picks the paper's common-correct samples (DeepDefense, Section 4.1).
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gfa_jax import console, data
from gfa_jax import config as gfa_config
from gfa_jax.models.state import inference_logits_fn
from gfa_jax.training import checkpoints, multiseed
from gfa_jax.training.train_state import make_model


# Which test samples a report attacks when it attacks num_samples of them (recorded in settings.json).
SAMPLE_SEED = 0
SAMPLE_SELECTION = "a fixed-seed random subset (seed 0) of the eligible samples"


@dataclasses.dataclass
class TrainedRun:
    """A finished training run loaded from its workdir: stacked parameters of every seed."""

    workdir: pathlib.Path
    config: ml_collections.ConfigDict
    model: nn.Module
    params: Any
    model_state: Any
    seeds: tuple[int, ...]

    def logits_fn(self, seed_index: int = 0):
        """``x -> logits`` of one seed's model in inference mode (batch norm by its running averages)."""
        return inference_logits_fn(self.model, multiseed.unstack(self.params, seed_index),
                                   multiseed.unstack(self.model_state, seed_index))

    @property
    def label(self) -> str:
        return self.config.strategy if self.config.strategy else self.config.name


def load_run(workdir: str | pathlib.Path, num_classes: int, input_shape: Sequence[int]) -> TrainedRun:
    """Restore the newest checkpoint of ``workdir`` (written by :func:`gfa_jax.training.train.train_and_evaluate`)."""
    workdir = pathlib.Path(workdir).expanduser().resolve()
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{workdir} has no config.json: is it the --workdir of a training run?")
    config = ml_collections.ConfigDict(gfa_config.upgrade_legacy(json.loads(config_path.read_text())))
    seeds = tuple(int(s) for s in config.seeds)
    model = make_model(config, num_classes)
    epoch, params, model_state = checkpoints.restore_latest_variables(
        checkpoints.make_manager(workdir / "checkpoints", this_process_only=True))
    if epoch == 0:
        raise FileNotFoundError(f"{workdir}/checkpoints holds no checkpoint yet: train first.")
    expected = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1,) + tuple(input_shape)))["params"]
    shapes = jax.tree.map(lambda leaf: leaf.shape[1:], params)
    if shapes != jax.tree.map(lambda leaf: leaf.shape, expected):
        raise ValueError(f"{workdir}'s checkpoint does not fit {config.model.name} on inputs {tuple(input_shape)} "
                         f"with {num_classes} classes: was it trained on another dataset?")
    return TrainedRun(workdir, config, model, params, model_state, seeds)


def predict(run: TrainedRun, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Predicted classes ``[S, N]`` of every seed."""
    chunk = multiseed.seeds_per_vmap(0, multiseed.seed_mesh(len(run.seeds)), multiseed.unstack(run.params, 0))
    apply = jax.jit(lambda params, model_state, x: multiseed.map_seeds(
        lambda p, s: jnp.argmax(inference_logits_fn(run.model, p, s)(x), -1), (params, model_state), chunk))
    batches = [apply(run.params, run.model_state, data.to_model_range(jnp.asarray(images[i:i + batch_size])))
               for i in range(0, len(images), batch_size)]
    return np.concatenate([np.asarray(b) for b in batches], axis=1)


def select_samples(runs: Sequence[TrainedRun], images, labels, *, protocol: str, num_samples: int,
                   batch_size: int) -> np.ndarray:
    """Indices of the test samples to attack.

    ``common_correct``: those every seed of every run classifies correctly (the paper's protocol);
    ``all``: every sample. Then ``num_samples`` of them (0: all) drawn with a fixed seed, in test-set
    order: not the first ones, since a test set stored class by class (an image folder) would give
    a few classes only.
    """
    if protocol == "common_correct":
        correct = np.ones(len(labels), bool)
        for run in console.progress(runs, desc="common-correct samples", unit="run"):
            correct &= np.all(predict(run, images, batch_size) == labels[None], axis=0)
        indices = np.flatnonzero(correct)
    elif protocol == "all":
        indices = np.arange(len(labels))
    else:
        raise ValueError(f"Unknown robustness.protocol {protocol!r}; use 'common_correct' or 'all'.")
    if not num_samples or num_samples >= len(indices):
        return indices
    return np.sort(np.random.default_rng(SAMPLE_SEED).permutation(indices)[:num_samples])
