"""Robustness audit: does a robustness number survive the gradient-masking checks?

    report = audit(logits_fn, x, y, key, eps=0.3, bounds=(-1.0, 1.0), surrogate_logits_fn=standard_fn,
                   budget="quick", training_loss=losses.mse_onehot)
    report.flags              # () when no indicator fired, else their names
    report.robust_accuracy    # per-sample worst case over every attack the audit ran
    report.indicators["zero_gradients/ce"]   # {"value", "threshold", "flagged", "evidence"}

A robustness number is only worth what the strongest attack says (Carlini et al., "On Evaluating
Adversarial Robustness", 2019, https://arxiv.org/abs/1902.06705). The audit runs a small, diverse set
of attacks on the given samples (single-step, iterative with several losses, black-box, transfer from
a surrogate, the same at an unbounded eps), takes the per-sample worst case, and checks the
indicators below; each is a plain number with a threshold, so a reader can check it.

Indicators (``value`` vs ``threshold``; a flag means a number of the report is not to be trusted):

- ``zero_gradients/<loss>`` for ``ce``, ``dlr`` and ``training_loss``: share of samples whose input
  gradient at the clean point is all zero, non-finite, or vanishing (max |g| < ``VANISHING_GRADIENT``
  = 1e-30, where float32 backward passes start to flush to zero and a sign is no longer reliable).
  Threshold 1 %: AutoAttack's ``check_zero_gradients`` (Croce & Hein 2020, ``autoattack/checks.py``)
  warns at a single point; 1 % keeps one dead-ReLU sample in 500 from flagging a run, while
  quantisation (~100 %) or a saturated softmax (the confident share) fire.
- ``randomness``: the largest L2 distance between L2-normalised logits of three identical calls, and
  whether the accuracy changes: AutoAttack's ``check_randomized``, same threshold 1e-4. A JAX
  function is pure, so only randomness that reaches the forward pass from outside (a callback,
  ``jax.experimental.io_callback``, as the tests do) can show; a model that draws from a key the
  caller closes over gives identical logits and is audited as deterministic. Under ``jax.vmap`` a
  callback without batched inputs draws once for the whole batch.
- ``gradient_fd_mismatch``: per sample, the autodiff directional derivative of the C&W margin along
  ``FD_DIRECTIONS`` random sign directions vs a central finite difference with step ``FD_STEP`` x
  the box width; the sample mismatches when the relative error of the vector of derivatives exceeds
  0.5 (the gradient is off by more than half its size: scaled, sign-flipped, stop_gradient-ed). Value:
  share of mismatching samples, threshold 10 %. This is the check behind BPDA (Athalye, Carlini &
  Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018): a non-differentiable or
  stop_gradient-ed preprocessing step gives a gradient that does not predict the function.
- ``single_step_beats_iterative``: share of samples that a single-step attack (FGSM on CE, DLR and
  the training loss) fools but no iterative white-box attack does (Carlini et al. 2019, sec. 5: iterative
  attacks must be at least as strong as single-step ones; Athalye et al. 2018).
- ``black_box_beats_white_box``: share fooled by Square but by no white-box attack (AutoAttack's
  ``check_square_sr``; Carlini et al. 2019: gradient-free attacks should not beat gradient-based ones).
- ``transfer_beats_white_box``: share fooled by adversarials crafted on ``surrogate_logits_fn`` (APGD)
  but by no white-box attack on the model (Pintor et al., "Indicators of Attack Failure", NeurIPS
  2022, https://arxiv.org/abs/2106.09947, transfer-failure indicator; Carlini et al. 2019).
  The three "beats" indicators flag above 1 % of the samples and at least ``MIN_FLAGGED_SAMPLES``
  (2): on a sound model the strongest attack should fool a superset of what weaker ones fool;
  AutoAttack tolerates 0.2 % for Square on an aggregate; per sample, 1 % allows for the randomness
  of the runs without hiding a systematic gap.
- ``unbounded_eps``: the largest accuracy, over the iterative white-box attacks, at an eps that
  reaches the box's centre from every input (L-inf: half the box width; L2: half the width times
  sqrt(dim)), where every input can be moved to the same mid-grey image; threshold 5 % (Carlini et
  al. 2019, sec. 5.2: unbounded attacks must reach 100 % success; 5 % allows a few samples whose step
  schedule stalls). Single-step and black-box attacks are listed in the evidence and their own
  numbers are marked untrusted above the threshold, without flagging the model.
- ``misdirected_gradients``: along FGSM's first step (on the training loss when given, else CE): the
  share of the sign step cancelled by the box, the loss and margin gains, and the step's efficiency,
  the median over samples of ``(m(x_fgsm) - m(x)) / (max_a m(x_a) - m(x))`` (m the C&W margin, x_a the
  output of every attack): the share of the attainable margin gain that the gradient's own step
  attains. Flagged when the efficiency is below half the surrogate's (``MISDIRECTION_RATIO``; the
  issue's DEEP model: clipping cancels 45 % of the steps vs 26 % and the loss rises ~100x less);
  report-only without a surrogate. A robust model is not flagged for being robust: the ratio
  compares each model with its own strongest attack.
- ``not_converged``: plain PGD-10 (CE) accuracy minus the lowest accuracy of the other iterative
  white-box attacks (more steps, restarts, APGD on CE, DLR and the training loss); threshold 10
  points (Carlini et al. 2019, sec. 4.1: more iterations / restarts must not change the result;
  Pintor et al. 2022). On the Fashion-MNIST MLP the standard run's gap is at most 5.4 points at every
  eps, DEEP's 20-24 at eps 0.2-0.3.
- ``loss_not_increasing``: among the samples PGD-10 does not fool, the share whose loss never rose
  above its value at the random start (Pintor et al. 2022, "silent failure": the attack makes no
  progress at all); threshold 20 %.

Each indicator has a ``kind``: ``"masking"`` (every indicator above but the last two: the model's
gradients or its response to attacks look masked, so no gradient-based number of it, the audit's own
included, is more than an upper bound) or ``"attack"`` (``not_converged``, ``loss_not_increasing``
and the minimum-norm ``budget_failure``: the plain attack's number is too optimistic, a defect of the
attack, not of the model; the audited worst case is the number to report). ``report.flags`` names
every indicator that fired, ``report.masking_flags`` those of kind ``"masking"``; the verdict reads
``trustworthy``, ``gradient masking suspected: ...`` or ``weak attacks: use the audited number
(...)``.

Randomised models: every evaluation of an attack's output draws anew, so a sample counts as fooled
when any evaluation misclassified it; when ``randomness`` fires, EOT-PGD (gradients averaged over
several forward passes, Athalye et al. 2018) joins the attacks, as AutoAttack's ``version='rand'``
suggests.

Minimum-norm attacks (C&W, EAD, DeepFool) report a success rate, not a robust accuracy: see
:func:`minimum_norm_outcomes` and :func:`minimum_norm_indicator` (failures above 5 % are a budget
failure of the attack, Carlini et al. 2019, sec. 5.2, never robustness).

Budgets (gradient evaluations per sample; Square: forward passes), ``quick`` being the default
for every report:

============================== ========== ============= ==============
attack                          quick      standard      thorough
============================== ========== ============= ==============
FGSM (CE, DLR, training loss)   1 each     1 each        1 each
PGD-10 CE (the baseline)        10         10            10
PGD, more steps x restarts      --         100 x 2       200 x 5
APGD CE / DLR / training loss   30 each    100 x 2 each  200 x 5 each
Square (margin)                 250        1000          5000
transfer: APGD on surrogate     CE 30      CE, DLR 100   CE, DLR 200
unbounded eps: APGD (each loss) 10         25            100
finite-difference directions    4          8             16
EOT-PGD (if randomness found)   20 x 5     50 x 10       100 x 20
============================== ========== ============= ==============

At the unbounded eps every attack but the long PGD runs again with one restart (APGD with the
iterations above: from there any step schedule converges; Square with its queries above).
Measured (process CPU time, 2-core CPU shared with other jobs) on the Fashion-MNIST MLP
(784-600-300-10, DEEP after 2 epochs, MSE training loss, standard run as surrogate), 500 samples,
eps 0.3: a plain PGD-10 + APGD-CE-100 report took 3.3 s (8.7 s with compilation); ``quick`` 11.2 s
(43.6 s), 3.4x (5x); ``standard`` 47.9 s (69.3 s), 14x (8x). Nearly every sample fell there, so
APGD's restarts ended early: on a robust model ``standard`` costs more.

Stacked seeds: the audit takes one ``logits_fn``; the caller loops over seeds (``gfa_jax.audit``'s
CLI does). Pass ``jax.tree_util.Partial(apply_fn, params)``: every attack is a jitted function taking
the model as a pytree, so the seeds of a run (same ``apply_fn``, new params) reuse the compiled
programs; a plain function is wrapped and compiled once per audit.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from gfa_jax import attacks, random_draws
from gfa_jax.attacks import base
from gfa_jax.attacks.gradient.apgd import run_with_restarts
from gfa_jax.losses import cross_entropy

Array = jax.Array
LossFn = Callable[[Array, Array], Array]

# ----------------------------------------------------------------------------- thresholds
VANISHING_GRADIENT = 1e-30
ZERO_GRADIENT_SHARE = 0.01
RANDOMNESS_LOGIT_DIFF = 1e-4
RANDOMNESS_CALLS = 3
FD_STEP = 1e-3
FD_RELATIVE_ERROR = 0.5
FD_MISMATCH_SHARE = 0.10
BEATS_SHARE = 0.01
MIN_FLAGGED_SAMPLES = 2
UNBOUNDED_ACCURACY = 0.05
MISDIRECTION_RATIO = 0.5
NOT_CONVERGED_GAP = 0.10
LOSS_NOT_INCREASING_SHARE = 0.20
MIN_NORM_FAILURE_SHARE = 0.05


@dataclasses.dataclass(frozen=True)
class Budget:
    """Attack budgets of one audit level (see the module docstring's table)."""

    pgd_steps: int
    long_steps: int
    long_restarts: int
    apgd_iter: int
    apgd_restarts: int
    square_queries: int
    transfer_losses: tuple[str, ...]
    unbounded_apgd_iter: int
    fd_directions: int
    eot_steps: int
    eot_samples: int


BUDGETS: dict[str, Budget] = {
    "quick": Budget(10, 0, 1, 30, 1, 250, ("ce",), 10, 4, 20, 5),
    "standard": Budget(10, 100, 2, 100, 2, 1000, ("ce", "dlr"), 25, 8, 50, 10),
    "thorough": Budget(10, 200, 5, 200, 5, 5000, ("ce", "dlr"), 100, 16, 100, 20),
}


ATTACK_INDICATORS = ("not_converged", "loss_not_increasing", "budget_failure")


def indicator_kind(name: str) -> str:
    """``"attack"`` for the indicators of a too-weak attack, ``"masking"`` for the others."""
    return "attack" if name in ATTACK_INDICATORS else "masking"


@dataclasses.dataclass(frozen=True)
class AuditReport:
    """What the audit found for one model on one set of samples.

    Attributes:
      flags: names of the indicators that fired, in the order of ``indicators``; () when none did.
      indicators: name -> ``{"value", "threshold", "flagged", "evidence"}`` (plain JSON values).
      robust_accuracy: share of samples still correct after every attack at ``eps`` (clean-wrong count
        as wrong): the audited worst case.
      per_sample: bool ``[N]``, True where the sample survived every attack.
      clean_accuracy: accuracy on the unperturbed samples.
      attack_accuracy: accuracy under each attack at ``eps``.
      unbounded_accuracy: accuracy under each attack run at the unbounded eps.
      untrusted_attacks: attack -> reasons its own accuracy is not to be reported as robustness.
      settings: eps, norm, bounds, budget, number of samples, unbounded eps, surrogate given.
    """

    flags: tuple[str, ...]
    indicators: dict[str, dict]
    robust_accuracy: float
    per_sample: np.ndarray
    clean_accuracy: float
    attack_accuracy: dict[str, float]
    unbounded_accuracy: dict[str, float]
    untrusted_attacks: dict[str, list[str]]
    settings: dict[str, Any]

    @property
    def trustworthy(self) -> bool:
        return not self.flags

    @property
    def masking_flags(self) -> tuple[str, ...]:
        """The flags of kind ``"masking"``: the model's gradients are suspect, not just an attack."""
        return tuple(name for name in self.flags
                     if self.indicators[name].get("kind", indicator_kind(name)) == "masking")

    @property
    def attack_flags(self) -> tuple[str, ...]:
        """The flags of kind ``"attack"``: a plain attack was too weak; the audited number stands."""
        return tuple(name for name in self.flags if name not in self.masking_flags)

    @property
    def verdict(self) -> str:
        """One cell of a table: ``"trustworthy"``, ``"gradient masking suspected: a, b"`` (attack flags
        appended after ``"; weak attacks: "``) or ``"weak attacks: use the audited number (c)"``."""
        if not self.flags:
            return "trustworthy"
        if self.masking_flags:
            text = "gradient masking suspected: " + ", ".join(self.masking_flags)
            return text + ("; weak attacks: " + ", ".join(self.attack_flags) if self.attack_flags else "")
        return "weak attacks: use the audited number (" + ", ".join(self.attack_flags) + ")"

    def to_dict(self) -> dict:
        """JSON-serialisable form (``per_sample`` as a list of bools)."""
        out = dataclasses.asdict(self)
        out["per_sample"] = [bool(v) for v in np.asarray(self.per_sample)]
        out["flags"] = list(self.flags)
        out["masking_flags"] = list(self.masking_flags)
        out["verdict"] = self.verdict
        return out

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> "AuditReport":
        """The report back from :meth:`to_dict`'s JSON (indicators saved without a kind get theirs)."""
        indicators = {name: {**ind, "kind": ind.get("kind", indicator_kind(name))}
                      for name, ind in saved["indicators"].items()}
        return cls(tuple(saved["flags"]), indicators, float(saved["robust_accuracy"]),
                   np.asarray(saved["per_sample"], bool), float(saved["clean_accuracy"]),
                   dict(saved["attack_accuracy"]), dict(saved["unbounded_accuracy"]),
                   {a: list(r) for a, r in saved["untrusted_attacks"].items()}, dict(saved["settings"]))


# ----------------------------------------------------------------------------- small helpers


def _per_sample(v: Array, x: Array) -> Array:
    v = jnp.asarray(v, x.dtype)
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def _project(x_adv: Array, x: Array, eps, norm: str, bounds) -> Array:
    if norm == "linf":
        return base.project_linf(x_adv, x, eps, bounds)
    return base.project_l2(x_adv, x, eps, bounds)


def _direction(grad: Array, norm: str) -> Array:
    """The steepest-ascent unit step of the norm: sign(g) (L-inf) or g / ||g||_2 (L2)."""
    return jnp.sign(grad) if norm == "linf" else base.normalize_l2(grad)


def _random_start(key, x: Array, eps, norm: str, bounds) -> Array:
    if norm == "linf":
        noise = random_draws.uniform(key, x.shape, x.dtype, -1.0, 1.0) * eps
    else:
        k_dir, k_rad = jax.random.split(key)
        radius = jax.random.uniform(k_rad, (x.shape[0],), x.dtype) * eps
        noise = base.normalize_l2(random_draws.normal(k_dir, x.shape, x.dtype)) * _per_sample(radius, x)
    return base.clip_to_bounds(x + noise, bounds)


def _select_loss(loss_fns: tuple, which) -> LossFn:
    """The loss number ``which`` (traced) of the static tuple ``loss_fns``: one compiled program
    serves every loss (``lax.switch`` runs only the chosen branch)."""
    if len(loss_fns) == 1:
        return loss_fns[0]
    return lambda logits, y: jax.lax.switch(which, loss_fns, logits, y)


def _value_logits_grad(logits_fn, loss_fn: LossFn, x: Array, y: Array, eot=1):
    """Per-sample loss, logits and input gradient, averaged over ``eot`` (traced) forward passes
    (Expectation over Transformation, Athalye et al. 2018): each pass of a randomised model draws anew."""

    def single(z):
        def f(z_):
            logits = logits_fn(z_)
            return loss_fn(logits, y), logits

        values, vjp, logits = jax.vjp(f, z, has_aux=True)
        (grad,) = vjp(jnp.ones_like(values))
        return values, logits, grad

    first = single(x)
    if isinstance(eot, int) and eot == 1:
        return first
    add = lambda _, acc: jax.tree.map(jnp.add, acc, single(x))
    total = jax.lax.fori_loop(1, eot, add, first)
    return jax.tree.map(lambda t: t / jnp.asarray(eot, t.dtype), total)


def _wrong(logits: Array, y: Array) -> Array:
    return jnp.argmax(logits, -1) != y


# ----------------------------------------------------------------------------- jitted attacks
# Each takes the model as a pytree (a ``jax.tree_util.Partial``), so that models sharing an apply
# function share the compiled program; the loss is picked by a traced index into a static tuple and
# step counts, restarts and EOT samples are traced where the algorithm allows, so one program per
# attack serves every loss and budget (compilation dominated the audit of small models).

_logits = jax.jit(lambda logits_fn, x: logits_fn(x))


@jax.jit
def _evaluate(logits_fn, x: Array, y: Array):
    logits = logits_fn(x)
    return jnp.argmax(logits, -1) == y, base.margin(logits, y)


@functools.partial(jax.jit, static_argnames=("loss_fns", "norm", "bounds"))
def _fgsm(logits_fn, x, y, eps, which, *, loss_fns, norm, bounds):
    """FGSM / FGM (one step of size eps), what happened along that step, and the health of the
    gradient at the clean point (one program for the attack and AutoAttack's zero-gradient check).

    Returns ``(x_adv, stats)``; ``stats["cancelled"]`` is the share of the step's length (L1 for
    L-inf, L2 for L2) removed by the box, ``nan`` where the gradient is zero.
    """
    loss_fn = _select_loss(loss_fns, which)
    loss0, logits0, grad = _value_logits_grad(logits_fn, loss_fn, x, y)
    step = _per_sample(eps, x) * _direction(grad, norm)
    x_adv = _project(x + step, x, eps, norm, bounds)
    order = 1 if norm == "linf" else 2
    intended = base.per_sample_norm(step, order)
    actual = base.per_sample_norm(x_adv - x, order)
    logits1 = logits_fn(x_adv)
    stats = {
        "cancelled": jnp.where(intended > 0, 1.0 - actual / jnp.where(intended > 0, intended, 1.0), jnp.nan),
        "loss_gain": loss_fn(logits1, y) - loss0,
        "margin_gain": base.margin(logits1, y) - base.margin(logits0, y),
        **_gradient_health(grad),
    }
    return x_adv, stats


def _gradient_health(grad: Array) -> dict[str, Array]:
    """Per sample: is the gradient all zero, non-finite, vanishing; its largest finite entry."""
    flat = grad.reshape(grad.shape[0], -1)
    finite = jnp.all(jnp.isfinite(flat), -1)
    max_abs = jnp.max(jnp.where(jnp.isfinite(flat), jnp.abs(flat), 0.0), -1)
    return {"zero": finite & (max_abs == 0), "nonfinite": ~finite,
            "vanishing": finite & (max_abs > 0) & (max_abs < VANISHING_GRADIENT), "max_abs": max_abs}


@functools.partial(jax.jit, static_argnames=("loss_fns", "norm", "bounds"))
def _pgd(logits_fn, x, y, key, eps, which, steps, restarts, alpha, eot, *, loss_fns, norm, bounds):
    """PGD with random starts (Madry et al. 2018); ``alpha`` is the step as a fraction of eps, ``eot``
    the forward passes averaged per gradient (EOT-PGD when > 1). All of them traced.

    Per sample: the first misclassified point met on any path (``x`` if clean-misclassified), else the
    max-loss point. Also the first run's loss at its start and its maximum along the path.
    """
    loss_fn = _select_loss(loss_fns, which)
    step_size = _per_sample(alpha * eps, x)
    clean_wrong = _wrong(logits_fn(x), y)
    where = lambda mask, a, b: jnp.where(_per_sample(mask, x) > 0, a, b)

    def visit(point, loss, logits, state):
        x_hit, hit, x_best, loss_best = state
        wrong = _wrong(logits, y)
        x_hit = where(wrong & ~hit, point, x_hit)
        x_best = where(loss > loss_best, point, x_best)
        return x_hit, hit | wrong, x_best, jnp.maximum(loss, loss_best)

    def one_run(run_key):
        x0 = _random_start(run_key, x, eps, norm, bounds)
        loss0, logits0, grad0 = _value_logits_grad(logits_fn, loss_fn, x0, y, eot)
        state0 = visit(x0, loss0, logits0, (x0, jnp.zeros_like(y, bool), x0, jnp.full(y.shape, -jnp.inf, x.dtype)))

        def step(_, carry):
            x_adv, grad, state = carry
            x_next = _project(x_adv + step_size * _direction(grad, norm), x, eps, norm, bounds)
            loss, logits, grad = _value_logits_grad(logits_fn, loss_fn, x_next, y, eot)
            return x_next, grad, visit(x_next, loss, logits, state)

        _, _, state = jax.lax.fori_loop(0, steps, step, (x0, grad0, state0))
        return state, loss0

    def restart(r, carry):
        (x_hit, hit, x_best, loss_best), first_start, first_max = carry
        (r_hit_x, r_hit, r_best_x, r_loss), r_start = one_run(jax.random.fold_in(key, r))
        state = (where(r_hit & ~hit, r_hit_x, x_hit), hit | r_hit, where(r_loss > loss_best, r_best_x, x_best),
                 jnp.maximum(loss_best, r_loss))
        first = r == 0
        return state, jnp.where(first, r_start, first_start), jnp.where(first, r_loss, first_max)

    neg_inf = jnp.full(y.shape, -jnp.inf, x.dtype)
    init = ((x, jnp.zeros_like(y, bool), x, neg_inf), neg_inf, neg_inf)
    (x_hit, hit, x_best, _), loss_start, loss_max = jax.lax.fori_loop(0, jnp.maximum(restarts, 1), restart, init)
    x_adv = where(clean_wrong, x, where(hit, x_hit, x_best))
    return x_adv, {"loss_start": loss_start, "loss_max": loss_max}


@functools.partial(jax.jit, static_argnames=("loss_fns", "norm", "bounds", "n_iter"))
def _apgd(logits_fn, x, y, key, eps, which, restarts, *, loss_fns, norm, bounds, n_iter):
    """APGD (Croce & Hein 2020) on any per-sample loss ``(logits, y) -> [B]``; ``restarts`` traced."""
    loss_fn = _select_loss(loss_fns, which)
    clean_wrong = _wrong(logits_fn(x), y)
    x_adv, _ = run_with_restarts(
        lambda _r, rows: (lambda logits: loss_fn(logits, y[rows])), logits_fn, x, y, key, eps=eps, bounds=bounds,
        norm=norm, n_iter=n_iter, n_runs=restarts, fooled_init=clean_wrong)
    x_adv = jnp.where(_per_sample(clean_wrong, x) > 0, x, x_adv)
    return _project(x_adv, x, eps, norm, bounds)


@functools.partial(jax.jit, static_argnames=("norm", "bounds", "n_queries"))
def _square(logits_fn, x, y, key, eps, *, norm, bounds, n_queries):
    """Square attack (Andriushchenko et al. 2020) on the margin: queries the model's outputs only."""
    spec = attacks.get_attack("square" if norm == "linf" else "square_l2")
    return spec.fn(logits_fn, x, y, key, eps=eps, bounds=bounds, n_queries=n_queries)


@functools.partial(jax.jit, static_argnames=("n_directions", "bounds"))
def _finite_difference_check(logits_fn, x, y, key, *, n_directions, bounds):
    """Autodiff vs central finite differences of the margin along random sign directions.

    Returns the per-sample relative error ``||d_ad - d_fd|| / (max(||d_ad||, ||d_fd||) + floor)`` over
    the directions, ``floor`` the float32 rounding noise of the differences (so that a locally flat
    function with a zero gradient is consistent), and the two norms.
    """
    h = FD_STEP * (bounds[1] - bounds[0])
    margin_fn = lambda z: base.margin(logits_fn(z), y)
    m0 = margin_fn(x)

    # Reverse mode, as the attacks use it (and as models with a custom VJP allow: no jvp).
    _, grad = base.input_gradient(lambda z, _y: margin_fn(z), x, y)

    def along(direction_key):
        v = random_draws.rademacher(direction_key, x.shape, x.dtype)
        autodiff = jnp.sum((grad * v).reshape(x.shape[0], -1), -1)
        return autodiff, (margin_fn(x + h * v) - margin_fn(x - h * v)) / (2 * h)

    autodiff, finite_diff = jax.lax.map(along, jax.random.split(key, n_directions))
    ad_norm = jnp.linalg.norm(autodiff, axis=0)
    fd_norm = jnp.linalg.norm(finite_diff, axis=0)
    floor = 100 * jnp.finfo(x.dtype).eps * (1.0 + jnp.abs(m0)) / h * math.sqrt(n_directions)
    error = jnp.linalg.norm(autodiff - finite_diff, axis=0) / (jnp.maximum(ad_norm, fd_norm) + floor)
    return {"relative_error": error, "autodiff_norm": ad_norm, "finite_difference_norm": fd_norm}


# ----------------------------------------------------------------------------- indicators


def indicator(value, threshold, flagged: bool, evidence: str, kind: str = "masking") -> dict:
    """One indicator as plain JSON values; ``kind``: ``"masking"`` or ``"attack"``."""
    if kind not in ("masking", "attack"):
        raise ValueError(f"indicator kind {kind!r} is not 'masking' or 'attack'")
    clean = lambda v: None if v is None else (float(v) if isinstance(v, (int, float, np.floating, np.integer))
                                              else v)
    return {"value": clean(value), "threshold": clean(threshold), "flagged": bool(flagged), "evidence": evidence,
            "kind": kind}


def _share_indicator(mask: np.ndarray, what: str) -> dict:
    count, n = int(mask.sum()), len(mask)
    share = count / max(n, 1)
    flagged = share > BEATS_SHARE and count >= MIN_FLAGGED_SAMPLES
    return indicator(share, BEATS_SHARE, flagged, f"{count} of {n} samples {what}")


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite entries (nan, silently, when there are none: a zero gradient took no step)."""
    finite = np.asarray(values)[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def minimum_norm_outcomes(result: attacks.MinNormResult, *, eps: float | None = None,
                          clean_correct: np.ndarray | None = None) -> dict[str, int]:
    """Counts of a minimum-norm attack's outcomes: ``success_within_eps``, ``success_beyond_eps`` (only
    with ``eps``), ``failed`` (the attack ran out of budget: a budget failure, not robustness) and
    ``clean_misclassified`` (when ``clean_correct`` is given; those are left out of the others)."""
    success = np.asarray(result.success, bool)
    norm = np.asarray(result.norm, np.float64)
    counted = np.ones_like(success) if clean_correct is None else np.asarray(clean_correct, bool)
    out = {"failed": int(np.sum(counted & ~success))}
    if eps is None:
        out["success"] = int(np.sum(counted & success))
    else:
        out["success_within_eps"] = int(np.sum(counted & success & (norm <= eps)))
        out["success_beyond_eps"] = int(np.sum(counted & success & (norm > eps)))
    if clean_correct is not None:
        out["clean_misclassified"] = int(np.sum(~counted))
    return out


def minimum_norm_indicator(result: attacks.MinNormResult, *, attack: str = "minimum-norm attack",
                           threshold: float = MIN_NORM_FAILURE_SHARE,
                           clean_correct: np.ndarray | None = None) -> dict:
    """``budget_failure``: the share of (clean-correct) samples a minimum-norm attack never fooled.

    A minimum-norm attack has no eps: it should fool every sample at some distance (Carlini et al.
    2019, sec. 5.2). Its failures are the attack running out of steps or search range, so a large
    share is flagged as a budget failure and is not to be read as robust accuracy.
    """
    outcomes = minimum_norm_outcomes(result, clean_correct=clean_correct)
    n = outcomes["failed"] + outcomes["success"]
    share = outcomes["failed"] / max(n, 1)
    return indicator(share, threshold, share > threshold,
                     f"{attack} failed on {outcomes['failed']} of {n} samples ({_pct(share)}): a budget failure "
                     "(more steps / a larger search range), not robustness", kind="attack")


# ----------------------------------------------------------------------------- the audit


def unbounded_eps(norm: str, bounds, input_shape: Sequence[int]) -> float:
    """An eps from which every input reaches the box's centre (L-inf: half the box width; L2: that
    times sqrt(dim)), so every sample can be moved onto one and the same image."""
    half = (bounds[1] - bounds[0]) / 2
    return float(half if norm == "linf" else half * math.sqrt(int(np.prod(input_shape))))


def audit(logits_fn, x, y, key, *, eps, norm: str = "linf", bounds, surrogate_logits_fn=None,
          budget: str | Budget = "standard", training_loss: LossFn | None = None) -> AuditReport:
    """Audit the robustness of ``logits_fn`` on ``(x, y)`` at radius ``eps``.

    Args:
      logits_fn: batched ``x -> logits [B, K]``; best a ``jax.tree_util.Partial(apply_fn, params)``.
      x: inputs ``[N, ...]`` inside ``bounds``; y: integer labels ``[N]``; key: a ``jax.random`` key.
      eps: the radius of the robustness number under audit. norm: ``"linf"`` or ``"l2"``.
      bounds: the input box ``(low, high)`` (required: the unbounded eps and the clipping depend on it).
      surrogate_logits_fn: a model of the same task without the defence (for a trained run: the
        standard run), for the transfer and misdirection indicators; the training loss is applied to
        it too.
      budget: ``"quick"``, ``"standard"``, ``"thorough"`` or a :class:`Budget`.
      training_loss: the model's own training loss ``(logits, y) -> [B]`` (e.g. ``losses.mse_onehot``):
        its gradients are checked and FGSM / APGD also ascend it.

    Returns:
      an :class:`AuditReport`.
    """
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    if bounds is None or len(bounds) != 2 or not bounds[0] < bounds[1]:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}")
    plan = BUDGETS[budget] if isinstance(budget, str) else budget
    bounds = (float(bounds[0]), float(bounds[1]))
    model = logits_fn if isinstance(logits_fn, Partial) else Partial(logits_fn)
    surrogate = None
    if surrogate_logits_fn is not None:
        surrogate = surrogate_logits_fn if isinstance(surrogate_logits_fn, Partial) else Partial(surrogate_logits_fn)
    x = jnp.asarray(x)
    y = jnp.asarray(y, jnp.int32)
    n = int(y.shape[0])
    eps = float(eps)
    eps_u = max(unbounded_eps(norm, bounds, x.shape[1:]), eps)  # an eps beyond it is itself unbounded
    keys = iter(jax.random.split(key, 32))

    clean_correct, clean_margin = (np.asarray(a) for a in _evaluate(model, x, y))
    num_classes = int(jax.eval_shape(model, x[:1]).shape[-1])
    losses: dict[str, LossFn] = {"ce": cross_entropy}
    if num_classes >= 3:  # DLR needs the third-largest logit
        losses["dlr"] = base.dlr
    if training_loss is not None:
        losses["training_loss"] = training_loss
    loss_fns = tuple(losses.values())
    which = {name: i for i, name in enumerate(losses)}
    indicators: dict[str, dict] = {}

    # --- single steps at eps from the clean points; their gradients are AutoAttack's zero-gradient check
    single_step_names = {name: {"ce": "fgsm", "training_loss": "fgsm_train_loss"}.get(name, f"fgsm_{name}")
                         for name in losses}
    first_steps = {label: _fgsm(model, x, y, jnp.asarray(eps, x.dtype), which[name], loss_fns=loss_fns, norm=norm,
                                bounds=bounds) for name, label in single_step_names.items()}
    for name, label in single_step_names.items():
        health = {k: np.asarray(first_steps[label][1][k]) for k in ("zero", "nonfinite", "vanishing", "max_abs")}
        bad = health["zero"] | health["nonfinite"] | health["vanishing"]
        share = float(bad.mean())
        indicators[f"zero_gradients/{name}"] = indicator(
            share, ZERO_GRADIENT_SHARE, share > ZERO_GRADIENT_SHARE,
            f"{int(health['zero'].sum())} zero, {int(health['vanishing'].sum())} vanishing (max |g| < "
            f"{VANISHING_GRADIENT:g}), {int(health['nonfinite'].sum())} non-finite input gradients of the "
            f"{name} loss among {n} samples; median max |g| {float(np.median(health['max_abs'])):.3g}")

    # --- randomness (AutoAttack's check_randomized)
    calls = [np.asarray(_logits(model, x)) for _ in range(RANDOMNESS_CALLS)]
    normalised = [c / (np.linalg.norm(c, axis=-1, keepdims=True) + 1e-10) for c in calls]
    max_diff = max(float(np.max(np.linalg.norm(a - b, axis=-1)))
                   for i, a in enumerate(normalised) for b in normalised[i + 1:])
    accuracies = [float(np.mean(np.argmax(c, -1) == np.asarray(y))) for c in calls]
    random_model = max_diff > RANDOMNESS_LOGIT_DIFF or len(set(accuracies)) > 1
    indicators["randomness"] = indicator(
        max_diff, RANDOMNESS_LOGIT_DIFF, random_model,
        f"{RANDOMNESS_CALLS} identical calls: largest L2 distance of normalised logits {max_diff:.3g}, "
        f"accuracies {', '.join(_pct(a) for a in accuracies)}")

    # --- gradient vs finite differences (BPDA's premise)
    fd = {k: np.asarray(v) for k, v in _finite_difference_check(
        model, x, y, next(keys), n_directions=plan.fd_directions, bounds=bounds).items()}
    mismatch = fd["relative_error"] > FD_RELATIVE_ERROR
    share = float(mismatch.mean())
    indicators["gradient_fd_mismatch"] = indicator(
        share, FD_MISMATCH_SHARE, share > FD_MISMATCH_SHARE,
        f"{int(mismatch.sum())} of {n} samples: autodiff directional derivatives of the margin differ from "
        f"finite differences (step {FD_STEP:g} x box width, {plan.fd_directions} sign directions) by more than "
        f"{FD_RELATIVE_ERROR:.0%}; median relative error {float(np.median(fd['relative_error'])):.3g}, median "
        f"|autodiff| {float(np.median(fd['autodiff_norm'])):.3g} vs |finite difference| "
        f"{float(np.median(fd['finite_difference_norm'])):.3g}")

    # --- the attacks at eps and at the unbounded eps
    def run_attacks(target, radius: float, unbounded: bool):
        outputs, extras = {}, {}
        r = jnp.asarray(radius, x.dtype)
        static = {"loss_fns": loss_fns, "norm": norm, "bounds": bounds}
        for loss_name, label in single_step_names.items():
            outputs[label], extras[label] = (first_steps[label] if not unbounded
                                             else _fgsm(target, x, y, r, which[loss_name], **static))
        outputs["pgd10"], extras["pgd10"] = _pgd(target, x, y, next(keys), r, which["ce"], plan.pgd_steps, 1, 0.25, 1,
                                                 **static)
        if plan.long_steps and not unbounded:
            outputs["pgd_long"], _ = _pgd(target, x, y, next(keys), r, which["ce"], plan.long_steps,
                                          plan.long_restarts, 2.5 / plan.long_steps, 1, **static)
        restarts = 1 if unbounded else plan.apgd_restarts
        n_iter = plan.unbounded_apgd_iter if unbounded else plan.apgd_iter
        for name in losses:
            label = "apgd_train_loss" if name == "training_loss" else f"apgd_{name}"
            outputs[label] = _apgd(target, x, y, next(keys), r, which[name], restarts, n_iter=n_iter, **static)
        outputs["square"] = _square(target, x, y, next(keys), r, norm=norm, bounds=bounds,
                                    n_queries=plan.square_queries)
        return outputs, extras

    outputs, extras = run_attacks(model, eps, unbounded=False)
    if random_model:
        outputs["eot_pgd"], _ = _pgd(model, x, y, next(keys), jnp.asarray(eps, x.dtype), which["ce"], plan.eot_steps,
                                     1, 2.5 / plan.eot_steps, plan.eot_samples, loss_fns=loss_fns, norm=norm,
                                     bounds=bounds)
    transfer_names = []
    surrogate_points = {}
    if surrogate is not None:
        for loss_name in plan.transfer_losses:
            if loss_name not in losses:
                continue
            label = f"transfer_apgd_{loss_name}"
            surrogate_points[label] = _apgd(surrogate, x, y, next(keys), jnp.asarray(eps, x.dtype), which[loss_name],
                                            1, loss_fns=loss_fns, norm=norm, bounds=bounds, n_iter=plan.apgd_iter)
            outputs[label] = surrogate_points[label]
            transfer_names.append(label)

    evaluated = {name: tuple(np.asarray(a) for a in _evaluate(model, x_adv, y)) for name, x_adv in outputs.items()}
    correct = {name: c & clean_correct for name, (c, _) in evaluated.items()}
    margins = {name: m for name, (_, m) in evaluated.items()}
    attack_accuracy = {name: float(c.mean()) for name, c in correct.items()}
    per_sample = np.logical_and.reduce([clean_correct] + list(correct.values()))
    robust_accuracy = float(per_sample.mean())

    unbounded_outputs, _ = run_attacks(model, eps_u, unbounded=True)
    unbounded_accuracy = {name: float(np.mean(np.asarray(_evaluate(model, x_adv, y)[0]) & clean_correct))
                          for name, x_adv in unbounded_outputs.items()}

    # --- per-sample comparisons between attack families
    single_step = [a for a in outputs if a.startswith("fgsm")]
    iterative = [a for a in outputs if a.startswith(("pgd", "apgd", "eot"))]
    fooled = {a: clean_correct & ~c for a, c in correct.items()}
    any_of = lambda names: np.logical_or.reduce([fooled[a] for a in names]) if names else np.zeros(n, bool)
    iterative_fooled = any_of(iterative)
    white_fooled = iterative_fooled | any_of(single_step)
    indicators["single_step_beats_iterative"] = _share_indicator(
        any_of(single_step) & ~iterative_fooled,
        f"fooled by a single-step attack ({', '.join(single_step)}) but by no iterative one ({', '.join(iterative)})")
    indicators["black_box_beats_white_box"] = _share_indicator(
        fooled["square"] & ~white_fooled, "fooled by Square (black-box) but by no white-box attack on the model")
    if transfer_names:
        indicators["transfer_beats_white_box"] = _share_indicator(
            any_of(transfer_names) & ~white_fooled,
            "fooled by adversarials crafted on the surrogate but by no white-box attack on the model")

    # --- unbounded eps
    iterative_u = [a for a in unbounded_outputs if a.startswith(("pgd", "apgd"))]
    worst_iterative_u = max(unbounded_accuracy[a] for a in iterative_u)
    indicators["unbounded_eps"] = indicator(
        worst_iterative_u, UNBOUNDED_ACCURACY, worst_iterative_u > UNBOUNDED_ACCURACY,
        f"accuracy at the unbounded eps {eps_u:.3g} ({norm}): "
        + ", ".join(f"{a} {_pct(v)}" for a, v in unbounded_accuracy.items())
        + f"; the value is the largest of the iterative attacks ({', '.join(iterative_u)})")

    # --- misdirected gradients: what the first gradient step achieves
    step_name = "fgsm_train_loss" if training_loss is not None else "fgsm"
    step_loss = "training_loss" if training_loss is not None else "ce"
    stats = {k: np.asarray(v) for k, v in extras[step_name].items()}
    best_margin = np.max(np.stack(list(margins.values())), axis=0)
    efficiency = _step_efficiency(margins[step_name], clean_margin, best_margin)
    evidence = (f"{step_name} at eps {eps:g}: the box cancels {_pct(_nanmean(stats['cancelled']))} of the "
                f"step, median loss gain {float(np.median(stats['loss_gain'])):.3g}, median margin gain "
                f"{float(np.median(stats['margin_gain'])):.3g}, efficiency (share of the best attack's margin gain "
                f"reached by the step) {efficiency:.3g}")
    if surrogate is not None:
        s_clean_correct, s_clean_margin = (np.asarray(a) for a in _evaluate(surrogate, x, y))
        s_x, s_stats = _fgsm(surrogate, x, y, jnp.asarray(eps, x.dtype), which[step_loss], loss_fns=loss_fns, norm=norm,
                             bounds=bounds)
        s_stats = {k: np.asarray(v) for k, v in s_stats.items()}
        s_margins = [np.asarray(_evaluate(surrogate, p, y)[1]) for p in [s_x] + list(surrogate_points.values())]
        s_efficiency = _step_efficiency(s_margins[0], s_clean_margin, np.max(np.stack(s_margins), axis=0))
        ratio = efficiency / s_efficiency if s_efficiency > 0 else float("nan")
        flagged = bool(np.isfinite(ratio) and ratio < MISDIRECTION_RATIO)
        evidence += (f"; surrogate: box cancels {_pct(_nanmean(s_stats['cancelled']))}, median loss gain "
                     f"{float(np.median(s_stats['loss_gain'])):.3g}, median margin gain "
                     f"{float(np.median(s_stats['margin_gain'])):.3g}, efficiency {s_efficiency:.3g}; "
                     f"value = efficiency ratio model / surrogate")
        indicators["misdirected_gradients"] = indicator(ratio, MISDIRECTION_RATIO, flagged, evidence)
    else:
        indicators["misdirected_gradients"] = indicator(
            efficiency, None, False, evidence + "; report-only: no surrogate to compare with")

    # --- convergence: more steps / restarts / other losses vs plain PGD-10
    others = [a for a in iterative if a != "pgd10"]
    best_other = min(others, key=lambda a: attack_accuracy[a])
    gap = attack_accuracy["pgd10"] - attack_accuracy[best_other]
    indicators["not_converged"] = indicator(
        gap, NOT_CONVERGED_GAP, gap > NOT_CONVERGED_GAP,
        f"PGD-10 (CE) {_pct(attack_accuracy['pgd10'])} vs " + ", ".join(f"{a} {_pct(attack_accuracy[a])}"
                                                                        for a in others)
        + f": {best_other} is {100 * gap:.1f} points lower", kind="attack")
    pgd_stats = {k: np.asarray(v) for k, v in extras["pgd10"].items()}
    survivors = correct["pgd10"]
    flat = pgd_stats["loss_max"] <= pgd_stats["loss_start"] + 1e-6 * (1.0 + np.abs(pgd_stats["loss_start"]))
    stalled = int(np.sum(survivors & flat))
    share = stalled / max(int(survivors.sum()), 1)
    indicators["loss_not_increasing"] = indicator(
        share, LOSS_NOT_INCREASING_SHARE, share > LOSS_NOT_INCREASING_SHARE and stalled >= MIN_FLAGGED_SAMPLES,
        f"{stalled} of the {int(survivors.sum())} samples PGD-10 does not fool never raised their CE loss "
        "above its value at the random start", kind="attack")

    untrusted: dict[str, list[str]] = {}
    for a, acc in attack_accuracy.items():
        reasons = []
        if acc - robust_accuracy > NOT_CONVERGED_GAP:
            reasons.append(f"{_pct(acc)} is {100 * (acc - robust_accuracy):.1f} points above the audited worst "
                           f"case {_pct(robust_accuracy)}")
        if a in unbounded_accuracy and unbounded_accuracy[a] > UNBOUNDED_ACCURACY:
            reasons.append(f"leaves {_pct(unbounded_accuracy[a])} correct at the unbounded eps {eps_u:.3g}")
        if reasons:
            untrusted[a] = reasons

    flags = tuple(name for name, ind in indicators.items() if ind["flagged"])
    settings = {"eps": eps, "norm": norm, "bounds": list(bounds), "budget": budget if isinstance(budget, str)
                else dataclasses.asdict(budget), "num_samples": n, "unbounded_eps": eps_u,
                "surrogate": surrogate is not None, "training_loss": training_loss is not None}
    return AuditReport(flags, indicators, robust_accuracy, per_sample, float(clean_correct.mean()),
                       attack_accuracy, unbounded_accuracy, untrusted, settings)


def _step_efficiency(step_margin: np.ndarray, clean_margin: np.ndarray, best_margin: np.ndarray) -> float:
    """Median over samples of ``(m_step - m_clean) / (m_best - m_clean)``, where the best attack moved
    the margin at all; nan if it moved nowhere."""
    attainable = best_margin - clean_margin
    valid = attainable > 1e-6 * (1.0 + np.abs(clean_margin))
    if not valid.any():
        return float("nan")
    return float(np.median((step_margin - clean_margin)[valid] / attainable[valid]))


def explain(report: AuditReport) -> list[str]:
    """Sentences saying which numbers of a report are not to be trusted, and why."""
    lines = []
    for name in report.flags:
        ind = report.indicators[name]
        lines.append(f"{name}: {ind['evidence']} (value {_fmt(ind['value'])}, threshold {_fmt(ind['threshold'])}).")
    for attack, reasons in report.untrusted_attacks.items():
        lines.append(f"{attack}'s accuracy is not a robustness number: {'; '.join(reasons)}.")
    if report.masking_flags:
        lines.append(f"Gradient masking suspected ({', '.join(report.masking_flags)}): the audited worst case "
                     f"{_pct(report.robust_accuracy)} is an upper bound that may still be loose.")
    elif report.flags:
        lines.append(f"Weak attacks ({', '.join(report.attack_flags)}), not a masked model: report the audited "
                     f"worst case {_pct(report.robust_accuracy)}.")
    return lines


def _fmt(v) -> str:
    return "n/a" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))


def summarize(reports: Mapping[str, AuditReport]) -> dict:
    """JSON-ready ``{label: report.to_dict()}``."""
    return {label: report.to_dict() for label, report in reports.items()}
