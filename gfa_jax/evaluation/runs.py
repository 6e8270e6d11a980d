"""Trained runs loaded from their workdirs, and the test samples a comparison of runs attacks.

A :class:`TrainedRun` holds the stacked parameters of every seed of one training run (of one
setting, for a run that swept hyperparameters in-program: :func:`load_runs` gives one per setting);
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

from gfa_jax import console, data, hyperparameters
from gfa_jax import config as gfa_config
from gfa_jax.models.state import inference_logits_fn
from gfa_jax.training import checkpoints, multiseed
from gfa_jax.training.train_state import make_model


# Which test samples a report attacks when it attacks num_samples of them (recorded in settings.json).
SAMPLE_SEED = 0
SAMPLE_SELECTION = "a fixed-seed random subset (seed 0) of the eligible samples"


@dataclasses.dataclass
class TrainedRun:
    """A finished training run loaded from its workdir: stacked parameters of every seed (of one
    ``setting`` of its in-program sweep; ``{}`` for a run without one)."""

    workdir: pathlib.Path
    config: ml_collections.ConfigDict
    model: nn.Module
    params: Any
    model_state: Any
    seeds: tuple[int, ...]
    setting: dict = dataclasses.field(default_factory=dict)

    def logits_fn(self, seed_index: int = 0):
        """``x -> logits`` of one seed's model in inference mode (batch norm by its running averages)."""
        return inference_logits_fn(self.model, multiseed.unstack(self.params, seed_index),
                                   multiseed.unstack(self.model_state, seed_index))

    @property
    def setting_name(self) -> str:
        return hyperparameters.setting_name(self.setting)

    @property
    def label(self) -> str:
        name = self.config.strategy if self.config.strategy else self.config.name
        return f"{name} [{self.setting_name}]" if self.setting else name


def load_runs(workdir: str | pathlib.Path, num_classes: int, input_shape: Sequence[int]) -> list[TrainedRun]:
    """The runs of ``workdir``: one per setting of its in-program sweep (one without a sweep)."""
    whole = _load_members(workdir, num_classes, input_shape)
    axes = hyperparameters.parse_axes(whole.config.sweep.axes)
    if not axes:
        return [whole]
    num_seeds = len(whole.config.seeds)
    runs = []
    for index, setting in enumerate(hyperparameters.settings(axes)):
        members = slice(index * num_seeds, (index + 1) * num_seeds)
        params, model_state = jax.tree.map(lambda leaf: leaf[members], (whole.params, whole.model_state))
        runs.append(dataclasses.replace(whole, params=params, model_state=model_state,
                                        seeds=tuple(int(s) for s in whole.config.seeds), setting=setting))
    return runs


def load_run(workdir: str | pathlib.Path, num_classes: int, input_shape: Sequence[int]) -> TrainedRun:
    """The run of ``workdir``, which must not sweep hyperparameters in-program (else :func:`load_runs`)."""
    runs = load_runs(workdir, num_classes, input_shape)
    if len(runs) > 1:
        raise ValueError(f"{workdir} trained {len(runs)} settings of an in-program sweep "
                         f"({', '.join(run.setting_name for run in runs)}): load them with load_runs.")
    return runs[0]


def _load_members(workdir: str | pathlib.Path, num_classes: int, input_shape: Sequence[int]) -> TrainedRun:
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
    members = hyperparameters.members(seeds, hyperparameters.parse_axes(config.sweep.axes))
    return TrainedRun(workdir, config, model, params, model_state, members.seeds)


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
