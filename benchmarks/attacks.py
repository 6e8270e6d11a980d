"""Attack timing: our jitted JAX attacks vs torchattacks on the same paper models; prints JSON.

    # full measurement (both paper models, batch 256, default attack list, torchattacks side by side)
    .venv/bin/python benchmarks/attacks.py --model both --batch 256 --repeats 5 --out attacks.json
    # a quick end-to-end check
    .venv/bin/python benchmarks/attacks.py --batch 16 --repeats 1 --attacks fgsm,pgd,deepfool
    # PGD eps sweep on the MLP: 8 eps x 5 seeds as ONE vmapped program vs Python loops (JAX, torch)
    .venv/bin/python benchmarks/attacks.py --eps-sweep --batch 256 --repeats 3

The full CNN run with torch is long on a small CPU (each torchattacks call is timed ``--repeats`` + 1
times; APGD-T makes 99 batch gradients per call, C&W 50, DeepFool loops per image): use
``--attacks`` / ``--repeats`` to split it.

What is measured, per model (``PaperCNN`` on 32x32x3, ``PaperMLP`` on 28x28x1, random-init) and attack:

- JAX: ``get_attack(name).fn(logits_fn, x, y, key, ...)`` under ``jax.jit`` (parameters are jit
  arguments, not constants): compile seconds, steady seconds per batch (median over the timed calls,
  ``block_until_ready``), XLA's FLOP count of the compiled program and an efficiency
  ``flops / steady seconds / measured matmul peak``. Where torch is timed too, both sides are timed in
  three alternating rounds (``common.time_interleaved``), each side at least ``--repeats`` calls and
  one second of calls (a 5 ms FGSM: ~200 calls), after two warm-up calls and 0.2 s: this VM's speed
  drifts by ±30 % within seconds, which one side timed after the other turned into a ratio's noise.
  Otherwise, and for one-call cases (JSMA) and per-image torch attacks (DeepFool, JSMA: their
  torch side is one call on a small batch, scaled), the median of ``--repeats`` calls after two
  warm-up calls.
  XLA's cost analysis counts a loop body ONCE (it does not multiply by trip counts; checked: PGD
  with 10 and 20 steps report the same count), so ``xla_flops`` is roughly one iteration plus the
  prologue. The efficiency therefore uses ``flops_estimate`` = (forward passes) x (XLA's FLOPs of
  one batched forward) + (backward passes) x (XLA's FLOPs of one input-gradient minus a forward),
  with pass counts from each attack's structure. DeepFool and C&W stop early (a ``while_loop`` that
  ends when every sample is done), so the work done is unknown: they report
  ``flops_if_no_early_stop`` and no efficiency (``null``).
- torch (``--torch``, on by default when torch and torchattacks import): the same architecture in
  PyTorch (NCHW), with the JAX parameters copied in (conv HWIO -> OIHW, dense [in, out] -> [out, in],
  CNN fc1's input rows permuted from NHWC to NCHW flatten order); the max |logit difference| is
  reported. torchattacks works on [0, 1] inputs, so the torch model is wrapped with
  ``x01 -> 2 x01 - 1`` and every radius / step size is halved (``eps_01 = eps_pm1 / 2``). The matching
  torchattacks attack is timed (interleaved with ours, as above) with the hyperparameters in
  each case's ``jax_kwargs`` / ``torch_kwargs``; ``torch_over_jax`` is the ratio of steady times.
- Labels are the model's own predictions on the uniform random inputs, so clean accuracy is 100%
  and every sample is attacked (torchattacks' DeepFool / Square / APGD skip misclassified samples).
  Robust accuracy (and, for minimum-norm attacks, success rate and median L2 norm in [-1, 1] units)
  is printed for both implementations side by side; random-start attacks use different RNGs in the
  two frameworks, so agreement is statistical, not bitwise.

Not like-for-like (also stated per case in the JSON ``note``):
- DeepFool: torchattacks loops over images in Python with one backward per class; it is timed on
  ``--torch-small-batch`` images, once (no warm-up: the per-image Python loop dominates), and scaled
  to the full batch (``torch_seconds_scaled_to_batch``).
  torchattacks applies the overshoot to each step and clips each step; ours (the authors' reference)
  applies it to the accumulated perturbation.
- C&W L2: torchattacks has no binary search over c (one run, c=1 on [0, 1] inputs, 50 Adam steps,
  batch-level early stop). Ours is run with ONE binary-search step, c = 4 (c=1 rescaled: distances
  double on [-1, 1], squared distances x4; Adam is scale invariant so the trajectories match), 50
  steps, per-sample early abort, each stretch between two abort checks run only on the samples still
  going. Our defaults (9 binary-search steps x 1000 steps) are not timed.
- EAD (EN and L1 rules): as C&W, one c, 50 FISTA steps. torchattacks' EAD moves its own reference
  image with its first step (its input is wrapped as the optimised parameter without a copy), so
  the two fool different shares; the timing compares the same number of steps.
- JSMA: torchattacks loops over images (one backward per class per pixel pair); timed as DeepFool.
- PIFGSM / PIFGSMPP: torchattacks' projection kernel is a 3-group convolution, so it runs on the
  CNN only (the MLP's one-channel images raise); the MLP rows have no torch side.
- The L2 cases (``apgd_l2``, ``apgd_t_l2``, ``square_l2``, ``autoattack_l2``): L2 radius 0.5 on
  [0, 1] at L-inf 8/255 (AutoAttack's CIFAR-10 radius), scaled with ``--eps01``.
- Square: both run ``--square-queries`` queries (torchattacks' default is 5000); both stop early once
  every sample is fooled.
- Early stopping: APGD, APGD-T, Square, FAB-T, DeepFool and C&W end their loops once no sample is
  left to attack, so the work done is unknown: they report ``flops_if_no_early_stop`` and
  ``efficiency_if_no_early_stop`` (an upper bound of the efficiency) instead of an efficiency.
  With torch, each such case also reports ``model_rows``: the samples each side pushed through the
  model in one (separate, untimed) call, counted by a callback in our model and a forward hook on
  torch's. It separates doing less work (rows ratio) from doing it faster (time ratio / rows ratio).
- FAB-T: torchattacks ``FAB(multi_targeted=True)``, 9 targets x 10 steps, both sides.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    WARMUP_CALLS,
    blocking_calls,
    compile_jitted,
    compiled_flops,
    emit_report,
    machine_info,
    matmul_peak_flops,
    time_interleaved,
    time_jitted,
)
from gfa_jax.attacks import MinNormResult, get_attack, loops  # noqa: E402
from gfa_jax.data import MODEL_INPUT_BOUNDS  # noqa: E402
from gfa_jax.models import PaperCNN, PaperMLP  # noqa: E402

MODELS = {"cnn": (PaperCNN, (32, 32, 3)), "mlp": (PaperMLP, (28, 28, 1))}
NUM_CLASSES = 10
EPS01 = 8 / 255  # torchattacks' L-inf default (its step: eps / 4), in [0, 1] units
COMPACTED = ("apgd", "apgd_t", "fab", "fab_t", "autoattack", "cw_l2", "square", "apgd_l2", "apgd_t_l2",
             "square_l2", "autoattack_l2", "ead_en", "ead_l1")
# Every registered attack that torchattacks also has, but the AutoAttack ensembles (run them with
# ``--attacks autoattack,autoattack_l2``).
DEFAULT_ATTACKS = ("fgsm,pgd,mifgsm,apgd,square,deepfool,cw_l2,bim,ffgsm,nifgsm,pgd_l2,apgd_t,fab_t,"
                   "difgsm,eotpgd,jitter,pifgsm,pifgsmpp,jsma,ead_en,ead_l1,apgd_l2,apgd_t_l2,square_l2,fab")
PIFGSM_ONE_CHANNEL = ("torchattacks' PIFGSM / PIFGSMPP project with a 3-group convolution: 3-channel images "
                      "only (Fashion-MNIST's one channel raises)")
L2_EPS01_AT_8_255 = 0.5  # the L2 radius (on [0, 1]) of the L2 cases at L-inf 8/255: AutoAttack's CIFAR-10 L2 radius
SWEEP_EPS01 = (1 / 255, 2 / 255, 3 / 255, 4 / 255, 6 / 255, 8 / 255, 12 / 255, 16 / 255)
SWEEP_SEEDS = 5


def pm1(value: float) -> float:
    """A radius or step size on [0, 1] inputs, in the units of our [-1, 1] inputs."""
    return 2.0 * value


# ----------------------------------------------------------------------------- the cases


@dataclasses.dataclass(frozen=True)
class Case:
    """One attack, configured identically in both frameworks.

    ``passes`` = (batched forward passes, batched backward passes) the attack makes, for the FLOP
    estimate (every iteration counted; ``None`` where a Jacobian's cost is not a count of passes: no
    efficiency); ``upper_bound`` when the attack may stop early.
    """

    name: str
    torch_cls: str
    jax_kwargs: dict[str, Any]
    torch_kwargs: dict[str, Any]
    passes: tuple[int, int] | None
    upper_bound: bool = False
    per_image_torch: bool = False
    note: str = ""
    torch_unsupported: dict[str, str] = dataclasses.field(default_factory=dict)  # model -> why torch can't
    long_call: bool = False  # a minute or more per call: one warm-up call and one timed call


def make_cases(square_queries: int, eps01: float = EPS01, chunk_size: int | None = None) -> dict[str, Case]:
    """Every case at L-inf radius ``eps01`` (on [0, 1] inputs; step ``eps01 / 4``, torchattacks' ratio)."""
    alpha01 = eps01 / 4
    steps = 10
    linf = {"eps": pm1(eps01), "alpha": pm1(alpha01), "steps": steps}
    linf01 = {"eps": eps01, "alpha": alpha01, "steps": steps}
    grads = (steps, steps)
    apgd_iter, n_targets = 10, NUM_CLASSES - 1
    df_iter, cw_steps, fab_iter = 50, 50, 10
    cases = [
        Case("fgsm", "FGSM", {"eps": pm1(eps01)}, {"eps": eps01}, (1, 1)),
        Case("pgd", "PGD", {**linf, "random_start": True}, {**linf01, "random_start": True}, grads),
        Case("bim", "BIM", linf, linf01, grads),
        Case("mifgsm", "MIFGSM", {**linf, "decay": 1.0}, {**linf01, "decay": 1.0}, grads),
        Case("nifgsm", "NIFGSM", {**linf, "decay": 1.0}, {**linf01, "decay": 1.0}, grads),
        Case("ffgsm", "FFGSM", {"eps": pm1(eps01), "alpha": pm1(10 / 255)}, {"eps": eps01, "alpha": 10 / 255},
             (1, 1)),
        Case("pgd_l2", "PGDL2", {"eps": pm1(1.0), "alpha": pm1(0.2), "steps": steps, "random_start": True},
             {"eps": 1.0, "alpha": 0.2, "steps": steps, "random_start": True}, grads),
        Case("apgd", "APGD", {"eps": pm1(eps01), "n_iter": apgd_iter, "n_restarts": 1, "loss": "ce", "rho": 0.75},
             {"norm": "Linf", "eps": eps01, "steps": apgd_iter, "n_restarts": 1, "loss": "ce", "rho": 0.75,
              "seed": 0},
             (apgd_iter + 1, apgd_iter + 1), upper_bound=True,
             note="torchattacks APGD defaults (Linf, 10 steps, 1 restart, ce); ours stops once every sample is "
                  "fooled"),
        Case("apgd_t", "APGDT", {"eps": pm1(eps01), "n_iter": apgd_iter, "n_target_classes": n_targets,
                                 "n_restarts": 1, "rho": 0.75},
             {"norm": "Linf", "eps": eps01, "steps": apgd_iter, "n_restarts": 1, "rho": 0.75, "seed": 0,
              "n_classes": NUM_CLASSES},
             (n_targets * (apgd_iter + 1),) * 2, upper_bound=True,
             note="torchattacks APGDT defaults (9 target classes, 10 steps); both attack only samples still "
                  "robust (ours: loops end once every sample is fooled)"),
        Case("square", "Square", {"eps": pm1(eps01), "n_queries": square_queries, "p_init": 0.8, "n_restarts": 1,
                                  "loss": "margin"},
             {"norm": "Linf", "eps": eps01, "n_queries": square_queries, "n_restarts": 1, "p_init": 0.8,
              "loss": "margin", "resc_schedule": True, "seed": 0},
             (square_queries + 1, 0), upper_bound=True,
             note=f"{square_queries} queries (torchattacks default 5000); both exit early once all samples "
                  "are fooled"),
        Case("fab_t", "FAB", {"eps": pm1(eps01), "n_iter": fab_iter, "n_target_classes": n_targets, "n_restarts": 1},
             {"norm": "Linf", "eps": eps01, "steps": fab_iter, "n_restarts": 1, "multi_targeted": True,
              "n_classes": NUM_CLASSES, "seed": 0},
             (n_targets * 2 * fab_iter, n_targets * fab_iter), upper_bound=True,
             note="FAB-T (9 targets, 10 steps): torchattacks FAB(multi_targeted=True); both attack only samples "
                  "still robust within eps (ours: loops end once every sample is fooled)"),
        Case("autoattack", "AutoAttack", {"eps": pm1(eps01), "n_iter": apgd_iter, "n_target_classes": n_targets,
                                          "n_queries": square_queries},
             {"eps": eps01, "steps": apgd_iter, "n_classes": NUM_CLASSES, "n_queries": square_queries},
             (1 + (n_targets + 1) * (apgd_iter + 1) + n_targets * 2 * fab_iter + square_queries + 1,
              (n_targets + 1) * (apgd_iter + 1) + n_targets * fab_iter), upper_bound=True,
             note=f"standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square), {apgd_iter} iterations (torchattacks' "
                  f"default), {square_queries} Square queries; torch: torchattacks.MultiAttack of the same four with "
                  "those budgets (its AutoAttack class fixes Square at 5000 queries); each later member attacks only "
                  "the samples still robust on both sides (torch indexes them, ours compacts them into chunks). "
                  "torchattacks' Square uses its rescaled p schedule, ours AutoAttack's"),
        Case("deepfool", "DeepFool", {"max_iter": df_iter, "overshoot": 0.02},
             {"steps": df_iter, "overshoot": 0.02}, (df_iter + 1, df_iter * (NUM_CLASSES - 1)),
             upper_bound=True, per_image_torch=True,
             note="torchattacks runs image by image (timed on --torch-small-batch, scaled per image); it "
                  "applies the overshoot per step, ours to the total perturbation (reference)"),
        Case("cw_l2", "CW", {"binary_search_steps": 1, "initial_const": 4.0, "steps": cw_steps,
                             "learning_rate": 0.01, "kappa": 0.0, "abort_early": True},
             {"c": 1.0, "kappa": 0.0, "steps": cw_steps, "lr": 0.01}, (cw_steps, cw_steps), upper_bound=True,
             note="torchattacks CW has no binary search: both run ONE c (c=1 on [0,1] = c=4 on [-1,1]) for "
                  f"{cw_steps} Adam steps; our default would be 9 binary-search steps x 1000 steps (not timed); "
                  "early abort per sample, the iterations compacted to the samples still running (ours) vs "
                  "on the batch cost (torchattacks)"),
    ]
    l2_eps01 = L2_EPS01_AT_8_255 * eps01 / (8 / 255)
    l2 = {"eps": pm1(l2_eps01)}
    l2_01 = {"norm": "L2", "eps": l2_eps01}
    ead_jax = {"binary_search_steps": 1, "initial_const": 4.0, "steps": cw_steps, "learning_rate": 0.01,
               "beta": 0.002, "kappa": 0.0, "abort_early": True}
    ead_torch = {"binary_search_steps": 1, "initial_const": 1.0, "max_iterations": cw_steps, "lr": 0.01,
                 "beta": 0.001, "kappa": 0}
    ead_note = ("as C&W: ONE c (c=1 on [0, 1] = c=4 on [-1, 1]; beta 0.001 = 0.002 on [-1, 1], the same "
                f"shrinkage), {cw_steps} FISTA steps; early abort per sample, compacted (ours) vs on the "
                "batch loss (torchattacks). Robust accuracies differ: torchattacks 3.5.1 wraps its input "
                "image as the optimised nn.Parameter without a copy, so its first gradient step also moves "
                "its reference image (with a copy, and no early abort on either side, both fool the same "
                "share: checked on the MLP, 64 samples)")
    cases += [
        Case("difgsm", "DIFGSM", {**linf, "decay": 0.0, "resize_rate": 0.9, "diversity_prob": 0.5,
                                  "random_start": False},
             {**linf01, "decay": 0.0, "resize_rate": 0.9, "diversity_prob": 0.5, "random_start": False}, grads,
             note="torchattacks DIFGSM defaults; the random resize-and-pad draws differ between frameworks"),
        Case("eotpgd", "EOTPGD", {**linf, "eot_iter": 2, "random_start": True},
             {**linf01, "eot_iter": 2, "random_start": True}, grads,
             note="eot_iter 2 on a deterministic model: torchattacks computes two equal gradients per step, "
                  "ours one (stochastic=False: the sum of equal gradients has the same sign)"),
        Case("jitter", "Jitter", {**linf, "scale": 10.0, "std": 0.1, "random_start": True},
             {**linf01, "scale": 10, "std": 0.1, "random_start": True}, grads),
        Case("pifgsm", "PIFGSM", {"eps": pm1(eps01), "steps": steps, "amplification": 10.0},
             {"max_epsilon": eps01, "num_iter_set": steps, "amplification": 10.0}, grads,
             note="torchattacks PIFGSM at this eps (its default is 16/255); its momentum and prob are unused",
             torch_unsupported={"mlp": PIFGSM_ONE_CHANNEL}),
        Case("pifgsmpp", "PIFGSMPP", {"eps": pm1(eps01), "steps": steps, "amplification": 10.0,
                                      "project_factor": 0.8},
             {"max_epsilon": eps01, "num_iter_set": steps, "amplification": 10.0, "project_factor": 0.8}, grads,
             torch_unsupported={"mlp": PIFGSM_ONE_CHANNEL}),
        Case("jsma", "JSMA", {"theta": 1.0, "gamma": 0.1}, {"theta": 1.0, "gamma": 0.1}, None,
             upper_bound=True, per_image_torch=True, long_call=True,
             note="untargeted = target (y + 1) % 10 on both sides; torchattacks runs image by image (timed on "
                  "--torch-small-batch, scaled per image), ours batched"),
        Case("ead_en", "EADEN", ead_jax, ead_torch, (2 * cw_steps, cw_steps), upper_bound=True, note=ead_note),
        Case("ead_l1", "EADL1", ead_jax, ead_torch, (2 * cw_steps, cw_steps), upper_bound=True, note=ead_note),
        Case("apgd_l2", "APGD", {**l2, "n_iter": apgd_iter, "n_restarts": 1, "loss": "ce", "rho": 0.75},
             {**l2_01, "steps": apgd_iter, "n_restarts": 1, "loss": "ce", "rho": 0.75, "seed": 0},
             (apgd_iter + 1, apgd_iter + 1), upper_bound=True,
             note=f"L2 radius {l2_eps01:.4g} on [0, 1]; otherwise as apgd"),
        Case("apgd_t_l2", "APGDT", {**l2, "n_iter": apgd_iter, "n_target_classes": n_targets, "n_restarts": 1,
                                    "rho": 0.75},
             {**l2_01, "steps": apgd_iter, "n_restarts": 1, "rho": 0.75, "seed": 0, "n_classes": NUM_CLASSES},
             (n_targets * (apgd_iter + 1),) * 2, upper_bound=True,
             note=f"L2 radius {l2_eps01:.4g} on [0, 1]; otherwise as apgd_t"),
        Case("square_l2", "Square", {**l2, "n_queries": square_queries, "p_init": 0.8, "n_restarts": 1,
                                     "loss": "margin"},
             {**l2_01, "n_queries": square_queries, "n_restarts": 1, "p_init": 0.8, "loss": "margin",
              "resc_schedule": True, "seed": 0},
             (square_queries + 1, 0), upper_bound=True,
             note=f"L2 radius {l2_eps01:.4g} on [0, 1]; {square_queries} queries; both exit early once all "
                  "samples are fooled"),
        Case("fab", "FAB", {"eps": pm1(eps01), "n_iter": fab_iter, "n_restarts": 1},
             {"norm": "Linf", "eps": eps01, "steps": fab_iter, "n_restarts": 1, "multi_targeted": False,
              "n_classes": NUM_CLASSES, "seed": 0}, None, upper_bound=True,
             note="untargeted FAB (the Jacobian of every logit per step), 10 steps, both sides"),
        Case("autoattack_l2", "AutoAttack", {**l2, "n_iter": apgd_iter, "n_target_classes": n_targets,
                                             "n_queries": square_queries},
             {"norm": "L2", "eps": l2_eps01, "steps": apgd_iter, "n_classes": NUM_CLASSES,
              "n_queries": square_queries},
             (1 + (n_targets + 1) * (apgd_iter + 1) + square_queries + 1, (n_targets + 1) * (apgd_iter + 1)),
             upper_bound=True,
             note=f"L2 radius {l2_eps01:.4g} on [0, 1]; APGD-CE, APGD-T and Square on both sides (our FAB is "
                  "L-inf only, so our L2 AutoAttack has no FAB-T, and torch's MultiAttack leaves it out too); "
                  "otherwise as autoattack"),
    ]
    if chunk_size is not None:  # the attacks whose runs are compacted to the samples still robust
        cases = [dataclasses.replace(c, jax_kwargs={**c.jax_kwargs, "chunk_size": chunk_size})
                 if c.name in COMPACTED else c for c in cases]
    return {case.name: case for case in cases}


# ----------------------------------------------------------------------------- JAX side


def init_params(model, input_shape, key):
    return model.init(key, jnp.zeros((1,) + input_shape))["params"]


def make_apply(model) -> Callable:
    return lambda params, x: model.apply({"params": params}, x)


def model_labels(apply, params, x):
    """The model's own predictions: clean accuracy 100%, so every sample gets attacked."""
    return jnp.argmax(apply(params, x), axis=-1).astype(jnp.int32)


def jitted_attack(apply, name: str, kwargs: dict) -> Callable:
    fn = get_attack(name).fn

    def run(params, x, y, key):
        return fn(lambda v: apply(params, v), x, y, key, bounds=MODEL_INPUT_BOUNDS, **kwargs)

    return jax.jit(run)


def pass_flops(apply, params, x, y) -> tuple[float | None, float | None]:
    """XLA FLOPs of one batched forward, and of one forward + input-gradient of the CE loss."""
    forward = jax.jit(apply).lower(params, x).compile()

    def loss(v):
        logits = apply(params, v)
        return -jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=-1))

    gradient = jax.jit(jax.grad(loss)).lower(x).compile()
    return compiled_flops(forward), compiled_flops(gradient)


def flops_estimate(case: Case, forward_flops, gradient_flops) -> float | None:
    if forward_flops is None or gradient_flops is None or case.passes is None:
        return None
    n_forward, n_backward = case.passes
    return n_forward * forward_flops + n_backward * (gradient_flops - forward_flops)


def adversarial(out) -> jax.Array:
    return out.x_adv if isinstance(out, MinNormResult) else out


def attack_metrics(logits, y, x_adv, x) -> dict:
    """Robust accuracy, mean C&W margin ``max_{j != y} z_j - z_y`` (> 0: fooled; informative even when
    both implementations fool every sample) and perturbation sizes (in [-1, 1] units)."""
    logits, y, delta = np.asarray(logits), np.asarray(y), np.asarray(x_adv) - np.asarray(x)
    fooled = logits.argmax(-1) != y
    flat = delta.reshape(len(delta), -1)
    l2 = np.linalg.norm(flat, axis=-1)
    true_logit = np.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
    other = np.where(np.eye(logits.shape[-1], dtype=bool)[y], -np.inf, logits).max(-1)
    return {
        "robust_accuracy": float(1.0 - fooled.mean()),
        "mean_margin": float(np.mean(other - true_logit)),
        "max_linf": float(np.abs(flat).max()),
        "median_l2_of_successes": float(np.median(l2[fooled])) if fooled.any() else None,
    }


def jax_model_rows(case: Case, apply, params, x, y, key) -> int:
    """Samples the model was evaluated on in one call of the attack (one row per sample per forward
    pass, a gradient's included; a chunk's padding rows count: they are computed): the work an
    early-stopping attack did. A separate, untimed call (the counting callback costs time)."""
    rows = []

    def counted(params, v):
        jax.debug.callback(lambda n: rows.append(int(n)), v.shape[0])
        return apply(params, v)

    jax.block_until_ready(jitted_attack(counted, case.name, case.jax_kwargs)(params, x, y, key))
    return sum(rows)


def time_jax_case(case: Case, apply, params, x, y, key, repeats: int, pass_counts, peak: float,
                  torch_call: Callable[[], Any] | None = None) -> tuple[dict, jax.Array, dict | None]:
    """The JAX side's timing (and efficiency), its ``x_adv``, and, with ``torch_call`` (not for a
    long call), the torch side's timing from the same interleaved rounds (:func:`time_interleaved`)."""
    fn = jitted_attack(apply, case.name, case.jax_kwargs)
    args = (params, x, y, key)
    torch_timing = None
    if case.long_call:
        timing = time_jitted(fn, args, steps=1, warmup=1)
    elif torch_call is None:
        timing = time_jitted(fn, args, steps=repeats)
    else:
        compiled, compile_seconds, xla_flops = compile_jitted(fn, args)
        both = time_interleaved({"jax": blocking_calls(compiled, args), "torch": torch_call}, min_calls=repeats)
        timing = {"compile_seconds": compile_seconds, **both["jax"], "xla_flops": xla_flops}
        torch_timing = both["torch"]
    x_adv = adversarial(fn(*args))  # cached executable, no second compile
    flops = flops_estimate(case, *pass_counts)
    if case.upper_bound:  # early exit: the work actually done is unknown; the efficiency is an upper bound
        bound = flops / timing["steady_seconds_median"] / peak if flops else None
        return {**timing, "flops_if_no_early_stop": flops, "efficiency_vs_matmul_peak": None,
                "efficiency_if_no_early_stop": bound}, x_adv, torch_timing
    efficiency = flops / timing["steady_seconds_median"] / peak if flops else None
    return {**timing, "flops_estimate": flops, "efficiency_vs_matmul_peak": efficiency}, x_adv, torch_timing


# ----------------------------------------------------------------------------- torch side


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
        import torchattacks  # noqa: F401
    except ImportError:
        return False
    return True


def torch_net(kind: str):
    """The paper architecture in PyTorch, NCHW, for inputs in [-1, 1]."""
    from torch import nn

    if kind == "cnn":
        return nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(2048, 1000, bias=False), nn.ReLU(),
            nn.Linear(1000, 600, bias=False), nn.ReLU(),
            nn.Linear(600, NUM_CLASSES, bias=False),
        )
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 600, bias=False), nn.Tanh(),
        nn.Linear(600, 300, bias=False), nn.Tanh(), nn.Linear(300, NUM_CLASSES, bias=False),
    )


def torch_state(kind: str, params) -> dict[str, np.ndarray]:
    """Flax parameters as a state dict of :func:`torch_net` (keys are Sequential indices)."""
    p = jax.tree_util.tree_map(np.asarray, params)
    if kind == "mlp":  # [B, 28, 28, 1] flattens like [B, 1, 28, 28]: no permutation needed
        return {"1.weight": p["fc1"]["kernel"].T, "3.weight": p["fc2"]["kernel"].T, "5.weight": p["fc3"]["kernel"].T}
    fc1 = p["fc1"]["kernel"]  # rows in NHWC flatten order (h, w, c); torch flattens (c, h, w)
    fc1 = fc1.reshape(8, 8, 32, -1).transpose(2, 0, 1, 3).reshape(2048, -1)
    return {
        "0.weight": p["conv1"]["kernel"].transpose(3, 2, 0, 1), "0.bias": p["conv1"]["bias"],
        "3.weight": p["conv2"]["kernel"].transpose(3, 2, 0, 1), "3.bias": p["conv2"]["bias"],
        "7.weight": fc1.T, "9.weight": p["fc2"]["kernel"].T, "11.weight": p["fc3"]["kernel"].T,
    }


def torch_model(kind: str, params):
    """:func:`torch_net` with ``params`` copied in, taking torchattacks' [0, 1] inputs (x -> 2x - 1)."""
    import torch
    from torch import nn

    class UnitRangeInput(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x01):
            return self.net(2.0 * x01 - 1.0)

    net = torch_net(kind)
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in torch_state(kind, params).items()})
    return UnitRangeInput(net).eval()


def to_torch01(x):
    """NHWC in [-1, 1] (JAX) -> NCHW in [0, 1] (torch)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray((np.asarray(x).transpose(0, 3, 1, 2) + 1.0) / 2.0))


def from_torch01(x01) -> np.ndarray:
    """NCHW in [0, 1] (torch) -> NHWC in [-1, 1]."""
    return x01.detach().numpy().transpose(0, 2, 3, 1) * 2.0 - 1.0


def time_torch(run: Callable, repeats: int, warmup: bool = True) -> tuple[dict, Any]:
    """Steady seconds of ``run()`` (median over ``repeats``, after the warm-up calls) and its last output."""
    out = None
    for _ in range(WARMUP_CALLS if warmup else 0):
        out = run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return {"steady_seconds_median": float(np.median(times)), "steady_seconds_min": float(np.min(times)),
            "steps_timed": repeats}, out


def torch_autoattack(model, *, eps: float, steps: int, n_classes: int, n_queries: int, seed: int = 0,
                     norm: str = "Linf"):
    """torchattacks' standard AutoAttack (``torchattacks.AutoAttack`` builds the same ``MultiAttack``)
    with the iteration and query budgets given."""
    import torchattacks

    common = {"eps": eps, "norm": norm, "seed": seed, "n_restarts": 1}
    members = [
        torchattacks.APGD(model, loss="ce", steps=steps, **common),
        torchattacks.APGDT(model, n_classes=n_classes, steps=steps, **common),
        torchattacks.FAB(model, multi_targeted=True, n_classes=n_classes, steps=steps, **common),
        torchattacks.Square(model, n_queries=n_queries, **common),
    ]
    if norm == "L2":  # ours has no L2 FAB: its L2 AutoAttack runs the other three (attack_list)
        members = [m for m in members if not isinstance(m, torchattacks.FAB)]
    return torchattacks.MultiAttack(members)


def torch_attack(case: Case, model):
    import torchattacks

    if case.torch_cls == "AutoAttack":
        return torch_autoattack(model, **case.torch_kwargs)
    return getattr(torchattacks, case.torch_cls)(model, **case.torch_kwargs)


def time_torch_case(case: Case, model, x01, y, repeats: int) -> tuple[dict, Any]:
    import torch

    attack = torch_attack(case, model)
    torch.manual_seed(0)
    if case.per_image_torch:  # seconds per image, dominated by Python: one call, no warm-up
        return time_torch(lambda: attack(x01, y), 1, warmup=False)
    return time_torch(lambda: attack(x01, y), repeats)


def torch_model_rows(case: Case, model, x01, y) -> int:
    """:func:`jax_model_rows` for torchattacks: rows through ``model.forward`` in one call (a hook)."""
    import torch

    rows = []
    hook = model.register_forward_pre_hook(lambda module, args: rows.append(int(args[0].shape[0])))
    try:
        torch.manual_seed(0)
        torch_attack(case, model)(x01, y)
    finally:
        hook.remove()
    return sum(rows)


# ----------------------------------------------------------------------------- one model


def setup_model(kind: str, batch: int, seed: int = 0):
    model_cls, input_shape = MODELS[kind]
    model = model_cls()
    apply = make_apply(model)
    key_params, key_x = jax.random.split(jax.random.key(seed))
    params = init_params(model, input_shape, key_params)
    x = jax.random.uniform(key_x, (batch,) + input_shape, minval=-1.0, maxval=1.0)
    return apply, params, x, model_labels(apply, params, x)


def run_case(case: Case, kind: str, apply, params, x, y, args, peak, pass_counts, tmodel) -> dict:
    key = jax.random.key(1)
    n_check = min(args.torch_small_batch, args.batch) if case.per_image_torch else args.batch
    with_torch = tmodel is not None and kind not in case.torch_unsupported
    torch_call, torch_out = None, {}
    if with_torch:
        import torch

        x01, y_t = to_torch01(x[:n_check]), torch.from_numpy(np.asarray(y[:n_check]).astype(np.int64))
        if not (case.per_image_torch or case.long_call):  # timed in rounds alternating with ours
            attack = torch_attack(case, tmodel)
            torch.manual_seed(0)

            def torch_call():
                torch_out["adv01"] = attack(x01, y_t)

    jax_timing, x_adv, torch_timing = time_jax_case(case, apply, params, x, y, key, args.repeats, pass_counts, peak,
                                                    torch_call)
    result = {"attack": case.name, "model": kind, "batch": args.batch, "jax_kwargs": case.jax_kwargs,
              "note": case.note, "jax": jax_timing}
    jax_metrics = attack_metrics(apply(params, x_adv[:n_check]), y[:n_check], x_adv[:n_check], x[:n_check])
    if not with_torch:
        result["agreement"] = {"n_samples": n_check, "jax": jax_metrics}
        if tmodel is not None:
            result["torch_unsupported"] = case.torch_unsupported[kind]
        return result

    if torch_timing is None:
        torch_timing, adv01 = time_torch_case(case, tmodel, x01, y_t, args.repeats)
    else:
        adv01 = torch_out["adv01"]
    with torch.no_grad():
        torch_logits = tmodel(adv01).numpy()
    torch_seconds = torch_timing["steady_seconds_median"] * args.batch / n_check
    torch_timing.update(torchattacks_class=case.torch_cls, torch_kwargs=case.torch_kwargs, batch_timed=n_check,
                        torch_seconds_scaled_to_batch=torch_seconds)
    result["torch"] = torch_timing
    result["torch_over_jax"] = torch_seconds / jax_timing["steady_seconds_median"]
    if case.upper_bound and not case.per_image_torch:  # the work each side did: early stops make it differ
        # (not where torch loops per image through Jacobians: its forward rows do not count its work)
        jax_rows = jax_model_rows(case, apply, params, x, y, key)
        torch_rows = torch_model_rows(case, tmodel, x01, y_t) * args.batch / n_check
        result["model_rows"] = {
            "jax": jax_rows, "torch": torch_rows, "torch_over_jax": torch_rows / jax_rows if jax_rows else None,
            "note": "samples through the model in one call (each forward pass, a gradient's included; chunk "
                    "padding counts); torch_over_jax / this ratio = the speed ratio per model row"}
    result["agreement"] = {"n_samples": n_check, "jax": jax_metrics,
                           "torch": attack_metrics(torch_logits, y[:n_check], from_torch01(adv01), x[:n_check])}
    return result


def case_line(result: dict) -> str:
    """One human-readable line per case: times, torch/jax ratio, efficiency against the matmul peak."""
    jax_t = result["jax"]
    eff = jax_t.get("efficiency_vs_matmul_peak")
    eff_text = f"{100 * eff:.1f} % of peak" if eff is not None else (
        f"<= {100 * jax_t['efficiency_if_no_early_stop']:.1f} % of peak (early stop)"
        if jax_t.get("efficiency_if_no_early_stop") is not None else "efficiency n/a")
    text = (f"[attacks] {result['model']} {result['attack']}: jax {jax_t['steady_seconds_median']:.3f} s "
            f"(compile {jax_t['compile_seconds']:.1f} s, {eff_text})")
    if "torch" in result:
        text += (f", torch {result['torch']['torch_seconds_scaled_to_batch']:.3f} s, "
                 f"torch/jax {result['torch_over_jax']:.2f}")
    if result.get("model_rows", {}).get("torch_over_jax"):
        text += f", model rows torch/jax {result['model_rows']['torch_over_jax']:.2f}"
    agreement = result["agreement"]
    accs = {k: agreement[k]["robust_accuracy"] for k in ("jax", "torch") if k in agreement}
    return text + ", robust acc " + " / ".join(f"{k} {v:.3f}" for k, v in accs.items())


def logits_check(apply, params, x, tmodel) -> dict:
    import torch

    with torch.no_grad():
        torch_logits = tmodel(to_torch01(x)).numpy()
    jax_logits = np.asarray(apply(params, x))
    return {"max_abs_logit_diff": float(np.abs(torch_logits - jax_logits).max()),
            "allclose_atol_1e-4": bool(np.allclose(torch_logits, jax_logits, atol=1e-4))}


def benchmark_model(kind: str, cases: list[Case], args, peak: float) -> dict:
    apply, params, x, y = setup_model(kind, args.batch)
    forward_flops, gradient_flops = pass_flops(apply, params, x, y)
    out = {"model": kind, "input_shape": list(x.shape[1:]), "batch": args.batch,
           "forward_flops": forward_flops, "input_gradient_flops": gradient_flops}
    tmodel = torch_model(kind, params) if args.torch else None
    if tmodel is not None:
        out["torch_vs_jax_logits"] = logits_check(apply, params, x, tmodel)
    out["cases"] = []
    for case in cases:
        result = run_case(case, kind, apply, params, x, y, args, peak, (forward_flops, gradient_flops), tmodel)
        out["cases"].append(result)
        print(case_line(result), file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------------------- eps sweep


def sweep_accuracy(apply, steps: int):
    """Robust accuracy of PGD (alpha = eps / 4) at one (params, labels, eps); vmappable over all three."""
    pgd = get_attack("pgd").fn

    def accuracy(params, x, y, eps, key):
        x_adv = pgd(lambda v: apply(params, v), x, y, key, eps=eps, bounds=MODEL_INPUT_BOUNDS, alpha=eps / 4, steps=steps)
        return jnp.mean(jnp.argmax(apply(params, x_adv), axis=-1) == y)

    return accuracy


def time_python_loop(run: Callable, repeats: int) -> tuple[float, Any]:
    """Median seconds of ``run()`` over ``repeats`` calls (after one warm-up) and its output."""
    timing, out = time_torch(run, repeats)
    return timing["steady_seconds_median"], out


def eps_sweep(args) -> dict:
    steps = 10
    model_cls, input_shape = MODELS["mlp"]
    model = model_cls()
    apply = make_apply(model)
    keys = jax.random.split(jax.random.key(0), SWEEP_SEEDS)
    stacked = jax.vmap(lambda k: init_params(model, input_shape, k))(keys)
    x = jax.random.uniform(jax.random.key(100), (args.batch,) + input_shape, minval=-1.0, maxval=1.0)
    ys = jax.vmap(lambda p: model_labels(apply, p, x))(stacked)
    eps_grid = jnp.asarray([pm1(e) for e in SWEEP_EPS01], jnp.float32)
    key = jax.random.key(1)
    accuracy = sweep_accuracy(apply, steps)

    over_eps = jax.vmap(accuracy, in_axes=(None, None, None, 0, None))
    grid_fn = jax.jit(jax.vmap(over_eps, in_axes=(0, None, 0, None, None)))  # [seeds, eps]
    vmapped = time_jitted(grid_fn, (stacked, x, ys, eps_grid, key), steps=args.repeats)
    grid_vmapped = np.asarray(grid_fn(stacked, x, ys, eps_grid, key))

    single = jax.jit(accuracy)
    seed_params = [jax.tree_util.tree_map(lambda a, i=i: a[i], stacked) for i in range(SWEEP_SEEDS)]
    start = time.perf_counter()
    single.lower(seed_params[0], x, ys[0], eps_grid[0], key).compile()
    loop_compile = time.perf_counter() - start

    def jax_loop():
        grid = [[single(seed_params[s], x, ys[s], eps, key) for eps in eps_grid] for s in range(SWEEP_SEEDS)]
        return np.asarray(jax.block_until_ready(grid))

    loop_seconds, grid_loop = time_python_loop(jax_loop, args.repeats)
    result = {
        "benchmark": "pgd_eps_sweep", "model": "mlp", "batch": args.batch, "pgd_steps": steps,
        "alpha": "eps / 4", "eps_grid_01": list(SWEEP_EPS01), "eps_grid_pm1": eps_grid.tolist(),
        "seeds": SWEEP_SEEDS, "labels": "each seed's own predictions on the same uniform random inputs",
        "note": "xla_flops counts the PGD loop body once (XLA does not multiply by trip counts); every "
                "(seed, eps) uses the same JAX key; torchattacks' random starts differ",
        "jax_vmapped_one_program": vmapped,
        "jax_python_loop": {"compile_seconds": loop_compile, "steady_seconds_median": loop_seconds,
                            "calls": SWEEP_SEEDS * len(SWEEP_EPS01)},
        "robust_accuracy_jax_vmapped": grid_vmapped.tolist(),
        "max_abs_diff_vmapped_vs_loop": float(np.abs(grid_vmapped - grid_loop).max()),
        "loop_over_vmapped": loop_seconds / vmapped["steady_seconds_median"],
    }
    if args.torch:
        torch_seconds, grid_torch = torch_sweep(seed_params, x, ys, args.repeats, steps)
        result["torchattacks_python_loop"] = {"steady_seconds_median": torch_seconds}
        result["robust_accuracy_torch"] = grid_torch.tolist()
        result["torch_over_jax_vmapped"] = torch_seconds / vmapped["steady_seconds_median"]
        result["torch_over_jax_loop"] = torch_seconds / loop_seconds
    return result


def torch_sweep(seed_params, x, ys, repeats: int, steps: int) -> tuple[float, np.ndarray]:
    import torch
    import torchattacks

    models = [torch_model("mlp", p) for p in seed_params]
    x01 = to_torch01(x)
    labels = [torch.from_numpy(np.asarray(y).astype(np.int64)) for y in ys]

    def loop():
        grid = []
        for model, y in zip(models, labels):
            row = []
            for eps in SWEEP_EPS01:
                adv = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=steps, random_start=True)(x01, y)
                with torch.no_grad():
                    row.append(float((model(adv).argmax(-1) == y).float().mean()))
            grid.append(row)
        return np.asarray(grid)

    torch.manual_seed(0)
    return time_python_loop(loop, repeats)


# ----------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="both", choices=["cnn", "mlp", "both"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--attacks", default=DEFAULT_ATTACKS, help="comma-separated; default: %(default)s")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per case (after two warm-up calls)")
    parser.add_argument("--torch", action=argparse.BooleanOptionalAction, default=torch_available(),
                        help="also time torchattacks (default: on when torch and torchattacks import)")
    parser.add_argument("--torch-small-batch", type=int, default=16,
                        help="batch on which per-image torch attacks (DeepFool, JSMA) are timed, then scaled")
    parser.add_argument("--square-queries", type=int, default=100)
    parser.add_argument("--eps01", type=float, default=EPS01,
                        help="L-inf radius on [0, 1] inputs (default 8/255: every sample of the random models falls "
                             "in the first iterations; a small radius keeps samples robust, so early-stopping "
                             "attacks run their whole budget)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="samples per chunk of the compacted attacks (APGD, FAB, Square, C&W, EAD, AutoAttack; "
                             "default: the library's, gfa_jax.attacks.loops.chunk_rows)")
    parser.add_argument("--eps-sweep", action="store_true", help="run the PGD eps x seeds sweep instead")
    parser.add_argument("--out", default=None, help="also write the JSON report to this file")
    return parser.parse_args()


def torch_info() -> dict:
    import torch
    import torchattacks

    return {"torch_version": torch.__version__, "torchattacks_version": torchattacks.__version__,
            "torch_threads": torch.get_num_threads()}


def main() -> None:
    args = parse_args()
    load_start = list(os.getloadavg())
    report: dict[str, Any] = {"machine": machine_info(), "argv": sys.argv[1:]}
    if args.torch:
        report["torch"] = torch_info()
    if args.eps_sweep:
        report.update(eps_sweep(args))
    else:
        all_cases = make_cases(args.square_queries, args.eps01, args.chunk_size)
        names = [n.strip() for n in args.attacks.split(",") if n.strip()]
        unknown = sorted(set(names) - set(all_cases))
        if unknown:
            raise SystemExit(f"No benchmark case for {unknown}; available: {sorted(all_cases)}")
        peak = matmul_peak_flops()
        kinds = ["cnn", "mlp"] if args.model == "both" else [args.model]
        report.update(benchmark="attacks", matmul_peak_flops=peak, eps01=args.eps01,
                      chunk_rows=loops.chunk_rows(args.batch, args.chunk_size),
                      models=[benchmark_model(kind, [all_cases[n] for n in names], args, peak) for kind in kinds])
    emit_report(report, args.out, load_start)


if __name__ == "__main__":
    main()
