"""Robustness audit of trained runs: which robustness numbers survive the gradient-masking checks.

    python -m gfa_jax.audit --workdirs runs/fmnist_mlp_deep,runs/fmnist_mlp_first \
        --surrogate runs/fmnist_mlp_standard --outdir runs/fmnist_audit [--budget quick] [--eps 0.3] \
        [--norm linf] [--num_samples 500]

Every seed of every run is audited (:func:`gfa_jax.evaluation.audit.audit`) on the test samples that
every seed of every run (and of the surrogate) classifies correctly; the surrogate's seed of the same
position (or its first) is the transfer source. Writes ``audit.json`` (every report) and ``audit.md``
(per run: verdict, audited worst case and indicator table per seed, and in words which numbers are
not to be trusted and why), both atomically. ``--eps`` defaults to the first run's table eps.

As a library: ``from gfa_jax import audit; report = audit.audit(logits_fn, x, y, key, eps=...,
bounds=(-1.0, 1.0))``. This module is the command line only: it re-exports the audit
(:mod:`gfa_jax.evaluation.audit`) and its orchestration over runs (:mod:`gfa_jax.evaluation.audit_runs`).
"""
from __future__ import annotations

import pathlib

from absl import app, flags

from gfa_jax import console
from gfa_jax.evaluation.audit import (  # noqa: F401  (the library, re-exported)
    ATTACK_INDICATORS,
    BUDGETS,
    AuditReport,
    Budget,
    audit,
    explain,
    indicator,
    indicator_kind,
    minimum_norm_indicator,
    minimum_norm_outcomes,
    unbounded_eps,
)
from gfa_jax.evaluation.audit_runs import (  # noqa: F401  (the orchestration, re-exported)
    BOUNDS,
    audit_compared_runs,
    audit_run,
    audit_runs,
    markdown,
    seed_logits_fns,
)


def define_flags() -> None:
    """The command line's flags, defined only when run as a program: importing this module as the
    library must not claim flag names that ``gfa_jax.evaluate`` also uses."""
    flags.DEFINE_list("workdirs", None, "Training workdirs to audit (comma separated).")
    flags.DEFINE_string("surrogate", None, "Workdir of an undefended run of the same data (transfer source).")
    flags.DEFINE_string("outdir", None, "Where audit.json and audit.md go.")
    flags.DEFINE_enum("budget", "quick", sorted(BUDGETS), "Attack budget of the audit.")
    flags.DEFINE_float("eps", None, "Radius audited (default: the first run's robustness table eps).")
    flags.DEFINE_enum("norm", "linf", ["linf", "l2"], "Threat model.")
    flags.DEFINE_integer("num_samples", 500, "Common-correct test samples audited (0: all).")
    flags.DEFINE_integer("seed", 0, "Seed of the audit's attacks.")
    flags.mark_flags_as_required(["workdirs", "outdir"])


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    try:
        audit_runs(f.workdirs, f.outdir, surrogate=f.surrogate, budget=f.budget, eps=f.eps, norm=f.norm,
                   num_samples=f.num_samples, seed=f.seed)
    except FileNotFoundError as error:
        raise app.UsageError(str(error)) from error
    print((pathlib.Path(f.outdir).expanduser().resolve() / "audit.md").read_text())


if __name__ == "__main__":
    define_flags()
    console.run_app(main)
