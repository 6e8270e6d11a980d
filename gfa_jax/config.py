"""The config layout every experiment shares, its validation, and the GFA strategies.

``configs/<name>.py`` files start from :func:`base_config` and override fields; the result is locked,
so an override of a key that does not exist (``--config.optimizer.lr=...``) fails, and
:func:`validate` rejects a config file that added one.
"""
from __future__ import annotations

import difflib
import json

import ml_collections

from gfa_jax import augmentation, data
from gfa_jax.losses import TASK_LOSSES
from gfa_jax.models import MODELS, get_model

STRATEGIES = ("standard", "first", "deep")


def base_config() -> ml_collections.ConfigDict:
    """Every key a run understands, with defaults (the Fashion-MNIST MLP, standard training)."""
    config = ml_collections.ConfigDict()
    config.name = "run"
    config.strategy = "standard"
    config.seeds = (0, 1, 2, 3, 4)
    config.seeds_per_vmap = 0  # seeds advanced by one vmap; 0: all (a CNN on one CPU: one at a time)
    config.num_epochs = 10
    config.batch_size = 128
    config.log_every_steps = 50
    # The loss training descends (and adversarial training's attack ascends): "mse" on one-hot
    # labels (DeepDefense) or "ce" (cross-entropy; the layer-wise adversarial training paper).
    config.task_loss = "mse"

    config.data = ml_collections.ConfigDict()
    config.data.name = "fashion_mnist"
    config.data.source = "auto"  # auto | tfds | idx | image_folder
    config.data.data_dir = ml_collections.config_dict.placeholder(str)
    config.data.download = False
    config.data.train_size = 0  # 0: the whole split
    config.data.test_size = 0
    # Training-batch augmentation, on the device inside the train step (gfa_jax.augmentation):
    # "none" (DeepDefense and the MNIST tables) | "crop_flip" (random crop with 4-pixel zero
    # padding + horizontal flip, the standard CIFAR recipe of the layer-wise paper's Tables VIII-IX).
    config.data.augmentation = "none"

    config.model = ml_collections.ConfigDict()
    config.model.name = "paper_mlp"

    # Keyword arguments of gfa_jax.gfa.gfa_loss: one beta per model layer, in forward order.
    config.gfa = ml_collections.ConfigDict()
    config.gfa.alpha = 1.0
    config.gfa.beta = (0.0, 0.0, 0.0)

    # Baselines of DeepDefense's Table 1-2 (issue: ADV, GAIE, DENOISE). ADV: train on a mix of clean
    # and adversarial inputs (gfa_jax.adversarial_training); GAIE: reward the cosine between the
    # input gradient and the image's edge map (gfa_jax.gaie). DENOISE is a model (paper_cnn_denoise).
    config.adversarial = ml_collections.ConfigDict()
    config.adversarial.enabled = False
    config.adversarial.attack = "pgd"
    config.adversarial.eps = 2 * 8 / 255
    config.adversarial.steps = 10
    config.adversarial.mix_ratio = 0.5  # fraction of each batch replaced by adversarial inputs
    config.gaie = ml_collections.ConfigDict()
    config.gaie.weight = 0.0

    # Layer-wise adversarial training (gfa_jax.layerwise): perturb chosen layers' outputs with
    # eps * |W| ... * sign(dL/dy) from the previous batch's gradients.
    config.layerwise = ml_collections.ConfigDict()
    config.layerwise.enabled = False
    config.layerwise.layers = ("all",)  # layer names / paths or groups all, conv, dense; "!name" excludes
    config.layerwise.eps = 0.1  # fixed eps, or the std of N(0, eps) when eps_mode == "random"
    config.layerwise.eps_mode = "random"  # random | fixed
    # input_fgsm: W r, r = eps*sign(W^T g) (eq. 5, the paper's equivalence) | per_unit: eps*sign(g)*(|W| 1)
    config.layerwise.form = "input_fgsm"
    # All-w: also train on inputs from config.adversarial's attack (keep adversarial.enabled False).
    config.layerwise.input_adversarial = False

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adam"  # adam | adamw | sgd
    config.optimizer.learning_rate = 1e-3
    config.optimizer.schedule = "constant"  # constant | cosine | multistep
    config.optimizer.warmup_steps = 0  # linear warm-up from 0 before the schedule
    # multistep: the learning rate is multiplied by decay_factor at the start of each of these epochs.
    config.optimizer.decay_epochs = ()
    config.optimizer.decay_factor = 0.1
    config.optimizer.momentum = 0.0
    config.optimizer.nesterov = False
    config.optimizer.weight_decay = 0.0

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 1000
    config.eval.train_samples = 10000  # train-set GFA on this many samples (0: all)
    config.eval.train_gfa_every_epochs = 1

    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.max_to_keep = 2

    # The robustness report that ends a run (gfa_jax.robustness): every attack over its eps grid,
    # all seeds in one program per attack. Distances are in model-input units ([-1, 1] inputs).
    config.robustness = ml_collections.ConfigDict()
    config.robustness.enabled = True
    config.robustness.attacks = ("fgsm", "pgd", "pgd_l2", "apgd", "deepfool")
    config.robustness.eps_linf = (0.0, 0.05, 0.1, 0.2, 0.3)
    config.robustness.eps_l2 = (0.0, 0.5, 1.0, 2.0, 3.0)
    config.robustness.table_eps_linf = 0.1  # the eps of the Markdown table's cells
    config.robustness.table_eps_l2 = 1.0
    config.robustness.protocol = "common_correct"  # common_correct | all
    config.robustness.num_samples = 1000  # of the test set, after the protocol's selection (0: all)
    config.robustness.batch_size = 500
    config.robustness.seed = 0
    config.robustness.figures = True  # example adversarials, loss landscape, feature maps
    # Per-attack keyword arguments, e.g. {"square": {"n_queries": 1000}}, as a JSON string so any
    # attack's options can be set from the command line.
    config.robustness.attack_kwargs = "{}"
    return config


def layer_names(model_name: str) -> tuple[str, ...]:
    return get_model(model_name).layer_names


def strategy_beta(strategy: str, model_name: str, weight: float, *, depth: int | None = None) -> tuple[float, ...]:
    """Per-layer GFA weights of a strategy (Section 4.2 of the paper).

    standard: no GFA; first: ``weight`` on the first layer; deep: on the first ``depth`` layers
    (default 3 for the CNN, 2 for the MLP, as in Tables 1 and 5).
    """
    names = layer_names(model_name)
    if strategy == "standard":
        count = 0
    elif strategy == "first":
        count = 1
    elif strategy == "deep":
        count = depth if depth is not None else min(3, len(names) - 1)
    else:
        raise ValueError(f"Unknown strategy {strategy!r}; choose one of {STRATEGIES}.")
    if not 0 <= count <= len(names):
        raise ValueError(f"depth {count} is outside 0..{len(names)} for {model_name}'s layers {names}.")
    return tuple(float(weight) if i < count else 0.0 for i in range(len(names)))


def _unknown_keys(config, reference, prefix=""):
    for key in config.keys():
        path = f"{prefix}{key}"
        if key not in reference:
            close = difflib.get_close_matches(key, list(reference.keys()), n=1)
            hint = f" Did you mean {prefix}{close[0]}?" if close else ""
            yield f"unknown config key {path!r}.{hint} Keys here: {', '.join(sorted(reference.keys()))}."
        elif isinstance(config[key], ml_collections.ConfigDict):
            yield from _unknown_keys(config[key], reference[key], prefix=f"{path}.")


def _robustness_problems(robustness: ml_collections.ConfigDict) -> list[str]:
    from gfa_jax import attacks
    from gfa_jax.robustness import attack_names

    problems = [f"robustness.attacks: unknown attack {name!r}; registered: {', '.join(sorted(attacks.REGISTRY))}."
                for name in attack_names(robustness.attacks) if name not in attacks.REGISTRY]
    try:
        kwargs = json.loads(robustness.attack_kwargs)
        if not isinstance(kwargs, dict):
            raise ValueError
    except ValueError:
        problems.append(f"robustness.attack_kwargs must be a JSON object such as "
                        f"'{{\"square\": {{\"n_queries\": 1000}}}}', got {robustness.attack_kwargs!r}.")
    if robustness.protocol not in ("common_correct", "all"):
        problems.append(f"robustness.protocol {robustness.protocol!r} is not 'common_correct' or 'all'.")
    return problems


def validate(config: ml_collections.ConfigDict) -> None:
    """Raise ``ValueError`` naming every problem: unknown keys, unknown names, mismatched beta."""
    problems = list(_unknown_keys(config, base_config()))
    if not problems:
        if config.model.name not in MODELS:
            problems.append(f"model.name {config.model.name!r} is not one of {sorted(MODELS)}.")
        else:
            names = layer_names(config.model.name)
            if len(config.gfa.beta) != len(names):
                problems.append(
                    f"gfa.beta has {len(config.gfa.beta)} entries but {config.model.name} has "
                    f"{len(names)} layers {names}; give one weight per layer."
                )
        if config.data.augmentation not in augmentation.AUGMENTATIONS:
            problems.append(f"data.augmentation {config.data.augmentation!r} is not one of "
                            f"{sorted(augmentation.AUGMENTATIONS)}.")
        if config.data.name not in data.DATASETS:
            problems.append(f"data.name {config.data.name!r} is not one of {sorted(data.DATASETS)}.")
        if config.task_loss not in TASK_LOSSES:
            problems.append(f"task_loss {config.task_loss!r} is not one of {sorted(TASK_LOSSES)}.")
        if not config.seeds:
            problems.append("seeds is empty; give at least one seed.")
        if len(set(config.seeds)) != len(config.seeds):
            problems.append(f"seeds {tuple(config.seeds)} repeat a seed.")
        problems += _robustness_problems(config.robustness)
        for key in ("batch_size", "num_epochs", "log_every_steps"):
            if config[key] < 1:
                problems.append(f"{key} must be >= 1, got {config[key]}.")
    if problems:
        raise ValueError("Invalid config:\n  - " + "\n  - ".join(problems))
