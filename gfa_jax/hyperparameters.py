"""Hyperparameters swept inside one compiled program: ``config.sweep.axes``.

A run trains *members*: every seed of ``config.seeds`` under every setting of the swept axes (the
Cartesian product of their values), stacked on the one leading axis of the train state that the
seeds alone had before. ::

    --config.sweep.axes='{"gfa.beta_scale": [0.01, 0.03, 0.1], "optimizer.learning_rate": [3e-4, 1e-3]}'

trains 3 x 2 settings x 5 seeds = 30 members through one jitted step. The swept values reach the step
as arrays (one value per member, traced), not as constants of the program: it compiles once whatever
the values, and changing them does not recompile. A member starts from its seed's init, data order
and keys, so the same seed under two settings differs only by the setting (common random numbers),
and a member equals its setting trained alone.

Members are ordered setting-major: member ``m`` is setting ``m // len(seeds)``, seed
``seeds[m % len(seeds)]``. Without axes the members are the seeds, and nothing else changes.
"""
from __future__ import annotations

import difflib
import itertools
import json
import math
import re
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

# Dotted config keys that can be swept in-program, with what they set. ``gfa.beta.<i>`` is the weight
# of layer i (0-based, forward order); ``gfa.beta_scale`` multiplies every layer's weight.
SWEEPABLE = {
    "gfa.alpha": "weight of the task loss",
    "gfa.beta_scale": "factor on every layer's GFA weight",
    "gfa.beta.<i>": "GFA weight of layer i (0-based, forward order)",
    "gfa.warmup_steps": "steps of the linear GFA-weight warm-up",
    "gaie.weight": "weight of the GAIE alignment",
    "optimizer.learning_rate": "peak learning rate of the schedule",
    "optimizer.weight_decay": "weight decay",
    "adversarial.eps": "radius of the adversarial-training attack",
    "layerwise.eps": "eps (or its std, eps_mode random) of the layer-wise perturbations",
}
_BETA_KEY = re.compile(r"gfa\.beta\.(\d+)")
_INTEGER_KEYS = ("gfa.warmup_steps",)
_POSITIVE_KEYS = ("optimizer.learning_rate",)

# A member's hyperparameters inside the step: swept dotted key -> its value (a traced scalar).
Hyper = Mapping[str, Any]


def parse_axes(text: str) -> dict[str, tuple[float, ...]]:
    """``config.sweep.axes`` (a JSON object of dotted key -> list of numbers) as a dict; '' is none."""
    if not text or not text.strip():
        return {}
    example = '\'{"gfa.beta_scale": [0.01, 0.1], "optimizer.learning_rate": [3e-4, 1e-3]}\''
    try:
        axes = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"sweep.axes is not JSON ({error}): give an object such as {example}.") from None
    if not isinstance(axes, dict):
        raise ValueError(f"sweep.axes must be a JSON object of key -> list of values, such as {example}.")
    parsed = {}
    for key, values in axes.items():
        values = values if isinstance(values, list) else [values]
        if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"sweep.axes[{key!r}] must be a non-empty list of numbers, got {values!r}.")
        parsed[key] = tuple(float(v) for v in values)
    return parsed


def _known(key: str) -> bool:
    return key in SWEEPABLE or bool(_BETA_KEY.fullmatch(key))


def axes_problems(config, num_layers: int) -> list[str]:
    """What is wrong with ``config.sweep.axes`` for a model of ``num_layers`` layers (empty: nothing)."""
    try:
        axes = parse_axes(config.sweep.axes)
    except ValueError as error:
        return [str(error)]
    problems = []
    for key, values in axes.items():
        if not _known(key):
            close = difflib.get_close_matches(key, list(SWEEPABLE), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(f"sweep.axes: {key!r} cannot be swept in-program.{hint} "
                            f"Sweepable: {', '.join(SWEEPABLE)} (sweep other keys with a sweep file: "
                            f"python -m gfa_jax.launch).")
            continue
        beta = _BETA_KEY.fullmatch(key)
        if beta and int(beta.group(1)) >= num_layers:
            problems.append(f"sweep.axes: {key!r} names layer {beta.group(1)}, but the model has {num_layers} "
                            f"layers (gfa.beta.0 .. gfa.beta.{num_layers - 1}).")
        if len(set(values)) != len(values):
            problems.append(f"sweep.axes[{key!r}] repeats a value: {list(values)}.")
        if not all(math.isfinite(v) and v >= 0 for v in values):
            problems.append(f"sweep.axes[{key!r}] must be finite and >= 0, got {list(values)}.")
        if key in _POSITIVE_KEYS and not all(v > 0 for v in values):
            problems.append(f"sweep.axes[{key!r}] must be > 0, got {list(values)}.")
        if key in _INTEGER_KEYS and not all(float(v).is_integer() for v in values):
            problems.append(f"sweep.axes[{key!r}] counts steps: give integers, got {list(values)}.")
    if "adversarial.eps" in axes and not (config.adversarial.enabled or config.layerwise.input_adversarial):
        problems.append("sweep.axes sweeps adversarial.eps, but the config trains without adversarial inputs "
                        "(set adversarial.enabled=True, or layerwise.input_adversarial=True).")
    if "layerwise.eps" in axes and not config.layerwise.enabled:
        problems.append("sweep.axes sweeps layerwise.eps, but layerwise.enabled is False.")
    return problems


def settings(axes: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """Every combination of the axes' values (the first axis varies slowest); ``[{}]`` without axes."""
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


def setting_name(setting: Mapping[str, float]) -> str:
    """``"gfa.beta_scale=0.03 optimizer.learning_rate=0.001"`` ('' for the unswept setting)."""
    return " ".join(f"{key}={value:g}" for key, value in setting.items())


class Members(NamedTuple):
    """The members of a run, in stacking order."""

    seeds: tuple[int, ...]  # each member's seed
    settings: tuple[dict[str, float], ...]  # each member's setting (its swept values)
    hyper: dict[str, np.ndarray]  # swept key -> float32 [members]: the step's argument

    def __len__(self) -> int:
        return len(self.seeds)

    def label(self, index: int) -> str:
        name = setting_name(self.settings[index])
        return f"seed {self.seeds[index]}" + (f" ({name})" if name else "")


def members(seeds: Sequence[int], axes: Mapping[str, Sequence[float]]) -> Members:
    """Every seed under every setting, setting-major."""
    grid = settings(axes)
    member_settings = tuple(setting for setting in grid for _ in seeds)
    hyper = {key: np.asarray([s[key] for s in member_settings], np.float32) for key in axes}
    return Members(tuple(int(s) for s in seeds) * len(grid), member_settings, hyper)


def value(config, hyper: Hyper | None, key: str):
    """The member's value of dotted ``key``: the swept one if ``key`` is swept, else the config's."""
    if hyper and key in hyper:
        return hyper[key]
    beta = _BETA_KEY.fullmatch(key)
    if beta:
        return float(config.gfa.beta[int(beta.group(1))])
    section, name = key.split(".")
    return config[section][name]


def is_swept(hyper: Hyper | None, key: str) -> bool:
    return bool(hyper) and key in hyper
