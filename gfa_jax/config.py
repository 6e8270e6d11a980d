"""The config layout every experiment shares, its validation, and the GFA strategies.

``configs/<name>.py`` files start from :func:`base_config` and override fields; the result is locked,
so an override of a key that does not exist (``--config.optimizer.lr=...``) fails, and
:func:`validate` rejects a config file that added one.
"""
from __future__ import annotations

import difflib
import inspect
import json
import math

import ml_collections
from ml_collections.config_dict import placeholder

from gfa_jax import attacks, augmentation, data, hyperparameters
from gfa_jax.losses import TASK_LOSSES
from gfa_jax.models import MODELS, get_model

STRATEGIES = ("standard", "first", "deep")
# The budgets of gfa_jax.evaluation.audit.BUDGETS (that module sits above this one; a test keeps the two equal).
AUDIT_BUDGETS = ("quick", "standard", "thorough")


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

    # Keyword arguments of gfa_jax.defenses.gfa.gfa_loss: one beta per model layer, in forward order.
    config.gfa = ml_collections.ConfigDict()
    config.gfa.alpha = 1.0
    config.gfa.beta = (0.0, 0.0, 0.0)
    config.gfa.beta_scale = 1.0  # multiplies every beta (what a sweep of the GFA weight scales)
    # Linear warm-up of the GFA weights: step t (from 0) trains with min(1, (t + 1) / warmup_steps)
    # times them; 0: full weight from the first step.
    config.gfa.warmup_steps = 0

    # Baselines of DeepDefense's Table 1-2 (issue: ADV, GAIE, DENOISE). ADV: train on a mix of clean
    # and adversarial inputs (gfa_jax.defenses.adversarial_training); GAIE: reward the cosine between the
    # input gradient and the image's edge map (gfa_jax.defenses.gaie). DENOISE is a model (paper_cnn_denoise).
    config.adversarial = ml_collections.ConfigDict()
    config.adversarial.enabled = False
    config.adversarial.attack = "pgd"
    config.adversarial.eps = 2 * 8 / 255
    config.adversarial.steps = 10
    config.adversarial.mix_ratio = 0.5  # fraction of each batch replaced by adversarial inputs
    # Batch-norm models: adversarials of the model in inference mode ("eval", Madry et al.'s and
    # AutoAttack users' practice) or in train mode (batch statistics of the attacked batch).
    config.adversarial.model_mode = "eval"
    config.gaie = ml_collections.ConfigDict()
    config.gaie.weight = 0.0

    # Layer-wise adversarial training (gfa_jax.defenses.layerwise): perturb chosen layers' outputs with
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
    config.optimizer.name = "adam"  # any optax optimizer: adam | adamw | sgd | lion | ...
    config.optimizer.learning_rate = 1e-3
    config.optimizer.schedule = "constant"  # constant | cosine | multistep
    config.optimizer.warmup_steps = 0  # linear warm-up from 0 before the schedule
    config.optimizer.decay_epochs = (100, 150)  # multistep: multiply by decay_factor at these epochs
    config.optimizer.decay_factor = 0.1
    config.optimizer.momentum = 0.0
    config.optimizer.nesterov = False
    config.optimizer.weight_decay = 0.0

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 1000
    config.eval.train_samples = 10000  # train-set GFA on this many samples (0: all)
    config.eval.train_gfa_every_epochs = 1

    # Hyperparameters swept inside the one compiled program (gfa_jax.hyperparameters): a JSON object
    # of dotted key -> values, e.g. '{"gfa.beta_scale": [0.01, 0.1]}'; every seed trains under every
    # combination. '': no in-program sweep.
    config.sweep = ml_collections.ConfigDict()
    config.sweep.axes = ""

    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.max_to_keep = 2

    # The robustness report that ends a run (gfa_jax.evaluation.robustness): every attack over its eps grid,
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
    # The robustness audit (gfa_jax.evaluation.audit) after the attacks: every seed of every run on the
    # attacked samples at the table's L-inf eps; verdict and audited worst case in table.md, details in
    # audit.json / audit.md. audit_budget: quick | standard | thorough (the audit's attack budgets);
    # audit_eps_linf: None = table_eps_linf; audit_num_samples: the first N attacked samples (0: all).
    config.robustness.audit = True
    config.robustness.audit_budget = "quick"
    config.robustness.audit_eps_linf = placeholder(float)
    config.robustness.audit_num_samples = 0
    # Each attack's options, one section per attack with its keyword arguments and their defaults
    # (``--config.robustness.attack_options.square.n_queries=1000``); None: the attack's own choice.
    config.robustness.attack_options = attack_options()
    return config


# Keywords every attack takes from the evaluation itself, not from its options section.
_ATTACK_CALL_KEYWORDS = ("eps", "bounds")


def attack_options() -> ml_collections.ConfigDict:
    """A section per registered attack: its keyword-only arguments with their defaults.

    Built from the signatures, so a new attack gets its section the day it is registered and a
    misspelt option fails like any unknown key. Defaults of None stay None (the attack chooses,
    e.g. a step size from eps) but accept a value from the command line.
    """
    options = ml_collections.ConfigDict()
    for name, spec in sorted(attacks.REGISTRY.items()):
        section = ml_collections.ConfigDict()
        for parameter in inspect.signature(spec.fn).parameters.values():
            if (parameter.kind is not inspect.Parameter.KEYWORD_ONLY or parameter.name in _ATTACK_CALL_KEYWORDS
                    or parameter.default is inspect.Parameter.empty):
                continue
            default = parameter.default
            section[parameter.name] = placeholder(object) if default is None else default
        options[name] = section
    return options


def attack_kwargs(robustness: ml_collections.ConfigDict, name: str) -> dict:
    """The keyword arguments of attack ``name`` from its options section (None: left to the attack)."""
    return {key: value for key, value in robustness.attack_options[name].items() if value is not None}


def upgrade_legacy(config_dict: dict) -> dict:
    """A saved ``config.json`` in today's layout: keys added since it was written take their defaults,
    and the old ``robustness.attack_kwargs`` JSON string becomes ``robustness.attack_options``."""
    config = base_config()
    saved = json.loads(json.dumps(config_dict))
    legacy_kwargs = saved.get("robustness", {}).pop("attack_kwargs", None)
    update_from_dict(config, saved)
    for name, kwargs in json.loads(legacy_kwargs or "{}").items():
        for key, value in kwargs.items():
            config.robustness.attack_options[name][key] = value
    return json.loads(config.to_json_best_effort(sort_keys=True))


def differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """``"key.path: X (saved), Y (now)"`` for every leaf where two config dicts differ."""
    lines = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            lines += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            lines.append(f"{prefix}{key}: {old!r} (saved), {new!r} (now)")
    return lines


def update_from_dict(config: ml_collections.ConfigDict, values: dict) -> None:
    """Set ``config``'s keys from a (JSON) dict of the same layout; keys ``config`` lacks are added."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(config.get(key), ml_collections.ConfigDict):
            update_from_dict(config[key], value)
        else:
            with config.unlocked():
                config[key] = tuple(value) if isinstance(value, list) else value


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


def _eps_problems(name: str, values) -> list[str]:
    values = values if isinstance(values, (tuple, list)) else (values,)
    bad = [v for v in values if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0)]
    return [f"{name} must be finite and >= 0, got {bad}."] if bad else []


def _robustness_problems(robustness: ml_collections.ConfigDict) -> list[str]:
    problems = [f"robustness.attacks: unknown attack {name!r}; registered: {', '.join(sorted(attacks.REGISTRY))}."
                for name in attacks.parse_attack_names(robustness.attacks) if name not in attacks.REGISTRY]
    if robustness.protocol not in ("common_correct", "all"):
        problems.append(f"robustness.protocol {robustness.protocol!r} is not 'common_correct' or 'all'.")
    for key in ("eps_linf", "eps_l2", "table_eps_linf", "table_eps_l2"):
        problems += _eps_problems(f"robustness.{key}", robustness[key])
    if robustness.audit_budget not in AUDIT_BUDGETS:
        problems.append(f"robustness.audit_budget {robustness.audit_budget!r} is not one of {list(AUDIT_BUDGETS)}.")
    if robustness.audit_eps_linf is not None:
        problems += _eps_problems("robustness.audit_eps_linf", robustness.audit_eps_linf)
    if robustness.audit_num_samples < 0:
        problems.append(f"robustness.audit_num_samples must be >= 0, got {robustness.audit_num_samples}.")
    loss_options = [(name, section.loss) for name, section in robustness.attack_options.items()
                    if "loss" in section and section.loss is not None and section.loss not in attacks.LOSSES]
    problems += [f"robustness.attack_options.{name}.loss {loss!r} is not one of {sorted(attacks.LOSSES)}."
                 for name, loss in loss_options]
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
            problems += hyperparameters.axes_problems(config, len(names))
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
        problems += _eps_problems("adversarial.eps", config.adversarial.eps)
        problems += _eps_problems("layerwise.eps", config.layerwise.eps)
        if config.adversarial.model_mode not in ("eval", "train"):
            problems.append(f"adversarial.model_mode {config.adversarial.model_mode!r} is not 'eval' or 'train'.")
        if config.adversarial.enabled and config.adversarial.attack not in attacks.REGISTRY:
            problems.append(f"adversarial.attack {config.adversarial.attack!r} is not a registered attack; "
                            f"choose one of {sorted(attacks.REGISTRY)}.")
        problems += _eps_problems("gfa.beta_scale", config.gfa.beta_scale)
        if config.gfa.warmup_steps < 0:
            problems.append(f"gfa.warmup_steps must be >= 0, got {config.gfa.warmup_steps}.")
        for key in ("batch_size", "num_epochs", "log_every_steps"):
            if config[key] < 1:
                problems.append(f"{key} must be >= 1, got {config[key]}.")
    if problems:
        raise ValueError("Invalid config:\n  - " + "\n  - ".join(problems))
