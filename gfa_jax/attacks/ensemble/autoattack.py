"""AutoAttack (Croce & Hein, ICML 2020): a parameter-free ensemble, following ``autoattack/autoattack.py``.

``version='standard'`` runs, in order, APGD-CE (1 restart), APGD-T (9 target classes), FAB-T
(9 target classes) and Square (5000 queries, ``resc_schedule=False`` as AutoAttack sets it), each
with 100 iterations. ``version='plus'`` runs APGD-CE, APGD-DLR, FAB, Square, APGD-T, FAB-T with 5
restarts for APGD-CE/DLR and FAB.

Each later attack only matters for the points still robust, and only attacks them, as the reference
does: the settled samples are passed as ``skip``, and every member compacts the rest into chunks of
static size (:func:`gfa_jax.attacks.loops.for_active_chunks`; on CPU, 128 samples; on accelerators
one chunk, i.e. the masked full batch), so a fooled sample costs them nothing. The result is
selected per sample, ``x_adv = where(still_robust & new_success, new, old)``.

Randomness: attack ``i`` of the list gets ``jax.random.fold_in(key, i)``, so a member run alone with
that key reproduces its part of the ensemble.

Deviations: FAB is L-inf only here, so for ``norm='l2'`` FAB/FAB-T are skipped (the reference runs L2
FAB-T); see the member modules for their own deviations.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from gfa_jax.attacks.gradient.apgd import apgd
from gfa_jax.attacks.gradient.apgd_t import apgd_targeted
from gfa_jax.attacks.base import (
    Array,
    Bounds,
    LogitsFn,
    _expand,
    project_l2,
    project_linf,
    register,
)
from gfa_jax.attacks.minimum_norm.fab import fab_bounded
from gfa_jax.attacks.black_box.square import square_attack

STANDARD = ("apgd-ce", "apgd-t", "fab-t", "square")
PLUS = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")

ROBUST = -1
CLEAN_MISCLASSIFIED = -2


class AutoAttackReport(NamedTuple):
    """Per-sample record of an AutoAttack run.

    Attributes:
      x_adv: ``[B, ...]`` adversarial inputs (``x`` where robust or clean misclassified).
      first_success: int ``[B]``: index into ``attacks`` of the first attack that fooled the sample,
        ``-1`` (:data:`ROBUST`) if none did, ``-2`` (:data:`CLEAN_MISCLASSIFIED`) if ``x`` itself is
        misclassified.
      robust_accuracy: ``[len(attacks) + 1]``: clean accuracy, then robust accuracy after each attack.

    The attack names, in the order run, are ``attack_list(version, norm)`` (or the ``attacks`` given).
    """

    x_adv: Array
    first_success: Array
    robust_accuracy: Array


def attack_list(version: str = "standard", norm: str = "linf") -> tuple[str, ...]:
    if version == "standard":
        names = STANDARD
    elif version == "plus":
        names = PLUS
    else:
        raise ValueError(f"AutoAttack version must be 'standard' or 'plus', got {version!r}")
    if norm == "l2":
        names = tuple(n for n in names if not n.startswith("fab"))
    elif norm != "linf":
        raise ValueError(f"AutoAttack supports norm 'linf' or 'l2', got {norm!r}")
    return names


def run_member(name: str, logits_fn: LogitsFn, x: Array, y: Array, key, *, eps, bounds: Bounds, norm: str,
               version: str = "standard", n_iter: int = 100, n_target_classes: int = 9,
               n_queries: int = 5000, skip: Array | None = None, chunk_size: int | None = None) -> Array:
    """Runs one AutoAttack member with the settings AutoAttack uses for ``version``.

    ``skip`` (bool ``[B]``): samples already settled; no member spends compute on them (their runs
    are compacted to the rest, in chunks of ``chunk_size``: see :func:`gfa_jax.attacks.loops.chunk_rows`)."""
    restarts = 5 if version == "plus" else 1
    # No tail chunks in the ensemble: compiling each member's body for a second chunk size pushed its
    # compile time from 8.5 to 16.2 s on the 2-core CPU, for no gain in its run time.
    no_tail = x.shape[0]
    if name == "apgd-ce":
        return apgd(logits_fn, x, y, key, eps=eps, bounds=bounds, loss="ce", norm=norm, n_iter=n_iter,
                    n_restarts=restarts, skip=skip, chunk_size=chunk_size, tail_chunk_size=no_tail)
    if name == "apgd-dlr":
        return apgd(logits_fn, x, y, key, eps=eps, bounds=bounds, loss="dlr", norm=norm, n_iter=n_iter,
                    n_restarts=restarts, skip=skip, chunk_size=chunk_size, tail_chunk_size=no_tail)
    if name == "apgd-t":
        return apgd_targeted(logits_fn, x, y, key, eps=eps, bounds=bounds, norm=norm, n_iter=n_iter,
                             n_target_classes=n_target_classes, n_restarts=1, skip=skip,
                             chunk_size=chunk_size, tail_chunk_size=no_tail)
    if name in ("fab", "fab-t"):
        if norm != "linf":
            raise ValueError("FAB is implemented for L-inf only.")
        return fab_bounded(logits_fn, x, y, key, eps=eps, bounds=bounds, targeted=(name == "fab-t"), n_iter=n_iter,
                           n_restarts=restarts if name == "fab" else 1, n_target_classes=n_target_classes,
                           skip=skip, chunk_size=chunk_size)
    if name == "square":
        return square_attack(logits_fn, x, y, key, eps=eps, bounds=bounds, norm=norm, n_queries=n_queries,
                             p_init=0.8, n_restarts=1, rescale_schedule=False, skip=skip, chunk_size=chunk_size,
                             tail_chunk_size=no_tail)
    raise ValueError(f"Unknown AutoAttack member {name!r}")


def autoattack_report(logits_fn: LogitsFn, x: Array, y: Array, key, *, eps, bounds: Bounds,
                      norm: str = "linf", version: str = "standard", attacks: Sequence[str] | None = None,
                      n_iter: int = 100, n_target_classes: int = 9, n_queries: int = 5000,
                      chunk_size: int | None = None) -> AutoAttackReport:
    """AutoAttack with its per-sample record (see :class:`AutoAttackReport`).

    Args:
      norm: 'linf' or 'l2'; version: 'standard' or 'plus'; attacks: optional explicit list of member
        names (overrides ``version``'s list). All static, as are the budgets ``n_iter`` (APGD/FAB),
        ``n_target_classes`` (APGD-T/FAB-T) and ``n_queries`` (Square), and ``chunk_size`` (samples per
        chunk of the compacted APGD / FAB runs; ``None``: :func:`gfa_jax.attacks.loops.chunk_rows`).
    """
    names = tuple(attacks) if attacks is not None else attack_list(version, norm)
    robust = jnp.argmax(logits_fn(x), axis=-1) == y
    first = jnp.where(robust, ROBUST, CLEAN_MISCLASSIFIED).astype(jnp.int32)
    x_adv = x
    accs = [jnp.mean(robust.astype(jnp.float32))]
    for i, name in enumerate(names):  # static list of (at most 6) different attacks
        x_new = run_member(name, logits_fn, x, y, jax.random.fold_in(key, i), eps=eps, bounds=bounds, norm=norm,
                           version=version, n_iter=n_iter, n_target_classes=n_target_classes, n_queries=n_queries,
                           skip=~robust, chunk_size=chunk_size)
        new = robust & (jnp.argmax(logits_fn(x_new), axis=-1) != y)
        x_adv = jnp.where(_expand(new, x), x_new, x_adv)
        first = jnp.where(new, i, first)
        robust = robust & ~new
        accs.append(jnp.mean(robust.astype(jnp.float32)))
    project = project_linf if norm == "linf" else project_l2
    return AutoAttackReport(project(x_adv, x, eps, bounds), first, jnp.stack(accs))


def autoattack(logits_fn: LogitsFn, x: Array, y: Array, key, *, eps, bounds: Bounds,
               norm: str = "linf", version: str = "standard", attacks: Sequence[str] | None = None,
               n_iter: int = 100, n_target_classes: int = 9, n_queries: int = 5000,
               chunk_size: int | None = None) -> Array:
    """AutoAttack: returns ``x_adv`` (the first successful member's point per sample, else ``x``)."""
    return autoattack_report(logits_fn, x, y, key, eps=eps, bounds=bounds, norm=norm, version=version,
                             attacks=attacks, n_iter=n_iter, n_target_classes=n_target_classes,
                             n_queries=n_queries, chunk_size=chunk_size).x_adv


_TEST_KW = {"n_iter": 2, "n_target_classes": 1, "n_queries": 3}


@register("autoattack", norm="linf", test_kwargs=_TEST_KW)
def autoattack_linf(logits_fn, x, y, key, *, eps, bounds, version="standard", attacks=None,
                    n_iter=100, n_target_classes=9, n_queries=5000, chunk_size=None):
    """AutoAttack in the L-inf ball (see :func:`autoattack`)."""
    return autoattack(logits_fn, x, y, key, eps=eps, bounds=bounds, norm="linf", version=version, attacks=attacks,
                      n_iter=n_iter, n_target_classes=n_target_classes, n_queries=n_queries,
                      chunk_size=chunk_size)


@register("autoattack_l2", norm="l2", test_kwargs=_TEST_KW)
def autoattack_l2(logits_fn, x, y, key, *, eps, bounds, version="standard", attacks=None,
                  n_iter=100, n_target_classes=9, n_queries=5000, chunk_size=None):
    """AutoAttack in the L2 ball (see :func:`autoattack`; FAB members are skipped for L2)."""
    return autoattack(logits_fn, x, y, key, eps=eps, bounds=bounds, norm="l2", version=version, attacks=attacks,
                      n_iter=n_iter, n_target_classes=n_target_classes, n_queries=n_queries,
                      chunk_size=chunk_size)
