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
bounds=(-1.0, 1.0))`` (this module re-exports :mod:`gfa_jax.evaluation.audit`).
"""
from __future__ import annotations

import functools

import json
import logging
import pathlib
import sys
from typing import Sequence

import jax
import ml_collections
import numpy as np
from absl import app, flags
from jax.tree_util import Partial

from gfa_jax import config as gfa_config
from gfa_jax import data, files, losses
from gfa_jax.evaluation import robustness
from gfa_jax.models.state import inference_apply
from gfa_jax.training import multiseed
from gfa_jax.evaluation.audit import (  # noqa: F401  (the library, re-exported)
    BUDGETS,
    AuditReport,
    Budget,
    audit,
    explain,
    indicator,
    minimum_norm_indicator,
    minimum_norm_outcomes,
    unbounded_eps,
)

BOUNDS = (-1.0, 1.0)  # data.to_model_range



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


def _config(workdir: pathlib.Path) -> ml_collections.ConfigDict:
    path = workdir / "config.json"
    if not path.exists():
        raise app.UsageError(f"{path} does not exist: --workdirs and --surrogate must name training workdirs.")
    return ml_collections.ConfigDict(gfa_config.upgrade_legacy(json.loads(path.read_text())))


def seed_logits_fns(run: robustness.TrainedRun) -> list[Partial]:
    """One ``logits_fn`` per seed, as pytrees over the same apply function (compiled once per run)."""
    apply = functools.partial(inference_apply, run.model)  # one function for every seed: compiled once
    return [Partial(apply, {"params": multiseed.unstack(run.params, i), **multiseed.unstack(run.model_state, i)})
            for i in range(len(run.seeds))]


def audit_runs(workdirs: Sequence[str], outdir: str, *, surrogate: str | None = None, budget: str = "quick",
               eps: float | None = None, norm: str = "linf", num_samples: int = 500, seed: int = 0) -> dict:
    """Audit every seed of every run; write ``audit.json`` and ``audit.md`` to ``outdir``; return the JSON."""
    paths = [pathlib.Path(w).expanduser().resolve() for w in workdirs]
    surrogate_path = pathlib.Path(surrogate).expanduser().resolve() if surrogate else None
    out = pathlib.Path(outdir).expanduser().resolve()
    first = _config(paths[0])
    settings = first.robustness
    if eps is None:
        eps = settings.table_eps_linf if norm == "linf" else settings.table_eps_l2
    dataset = data.load_dataset(first.data.name, source=first.data.source, data_dir=first.data.data_dir,
                                test_size=first.data.test_size, train_size=1, download=first.data.download)
    input_shape = dataset.test_images.shape[1:]
    runs = [robustness.load_run(p, dataset.num_classes, input_shape) for p in paths]
    reference = robustness.load_run(surrogate_path, dataset.num_classes, input_shape) if surrogate_path else None
    indices = robustness.select_samples(runs + ([reference] if reference else []), dataset.test_images,
                                        dataset.test_labels, protocol="common_correct", num_samples=num_samples,
                                        batch_size=settings.batch_size)
    if len(indices) == 0:
        raise ValueError("No test sample is classified correctly by every run and seed.")
    x = data.to_model_range(jax.numpy.asarray(dataset.test_images[indices]))
    y = jax.numpy.asarray(dataset.test_labels[indices])
    logging.info("Auditing %d common-correct test samples at %s eps %g (budget %s)", len(indices), norm, eps, budget)
    surrogate_fns = seed_logits_fns(reference) if reference else []
    key = jax.random.key(seed)
    result = {"settings": {"eps": float(eps), "norm": norm, "budget": budget, "bounds": list(BOUNDS),
                           "num_samples": int(len(indices)), "seed": seed,
                           "surrogate": str(surrogate_path) if surrogate_path else None,
                           "unbounded_eps": max(unbounded_eps(norm, BOUNDS, input_shape), float(eps))},
              "runs": {}}
    reports: dict[str, dict[int, AuditReport]] = {}
    for r, run in enumerate(runs):
        training_loss = losses.get_task_loss(run.config.get("task_loss", "mse"))
        reports[run.label] = {}
        for i, (run_seed, logits_fn) in enumerate(zip(run.seeds, seed_logits_fns(run))):
            surrogate_fn = surrogate_fns[i % len(surrogate_fns)] if surrogate_fns else None
            reports[run.label][run_seed] = audit(
                logits_fn, x, y, jax.random.fold_in(jax.random.fold_in(key, r), i), eps=eps, norm=norm,
                bounds=BOUNDS, surrogate_logits_fn=surrogate_fn, budget=budget, training_loss=training_loss)
            logging.info("%s seed %d: %s, audited worst case %.1f %%", run.label, run_seed,
                         reports[run.label][run_seed].verdict, 100 * reports[run.label][run_seed].robust_accuracy)
        result["runs"][run.label] = {"workdir": str(run.workdir), "task_loss": run.config.get("task_loss", "mse"),
                                     "seeds": {str(s): rep.to_dict() for s, rep in reports[run.label].items()}}
    files.write_json(out / "audit.json", result)
    files.write_text_atomic(out / "audit.md", markdown(reports, result["settings"]))
    return result


def _cell(ind: dict) -> str:
    value = ind["value"]
    text = "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.3g}"
    return f"**{text}** (flag)" if ind["flagged"] else text


def markdown(reports: dict[str, dict[int, AuditReport]], settings: dict) -> str:
    """``audit.md``: per run, verdicts, accuracies and indicators per seed, then the reasons in words."""
    lines = [f"# Robustness audit ({settings['norm']} eps {settings['eps']:g}, budget {settings['budget']}, "
             f"{settings['num_samples']} common-correct test samples, unbounded eps {settings['unbounded_eps']:.3g})",
             ""]
    if not settings["surrogate"]:
        lines += ["No surrogate given: transfer and misdirection are not compared with an undefended model.", ""]
    for label, by_seed in reports.items():
        seeds = list(by_seed)
        header = "| | " + " | ".join(f"seed {s}" for s in seeds) + " |"
        rule = "|---|" + "---|" * len(seeds)
        lines += [f"## {label}", "", header, rule,
                  "| verdict | " + " | ".join(by_seed[s].verdict for s in seeds) + " |",
                  "| audited worst case | " + " | ".join(f"{100 * by_seed[s].robust_accuracy:.1f} %" for s in seeds)
                  + " |"]
        attacks = list(dict.fromkeys(a for s in seeds for a in by_seed[s].attack_accuracy))
        for a in attacks:
            cells = []
            for s in seeds:
                acc = by_seed[s].attack_accuracy.get(a)
                cell = "" if acc is None else f"{100 * acc:.1f} %"
                cells.append(cell + (" (untrusted)" if a in by_seed[s].untrusted_attacks else ""))
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
        lines += ["", "| indicator | threshold | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                  "|---|---|" + "---|" * len(seeds)]
        names = list(dict.fromkeys(n for s in seeds for n in by_seed[s].indicators))
        for name in names:
            inds = [by_seed[s].indicators.get(name) for s in seeds]
            threshold = next((i["threshold"] for i in inds if i), None)
            lines.append(f"| {name} | {'report-only' if threshold is None else f'{threshold:g}'} | "
                         + " | ".join(_cell(i) if i else "" for i in inds) + " |")
        lines.append("")
        for s in seeds:
            sentences = explain(by_seed[s])
            if not sentences:
                lines.append(f"Seed {s}: every indicator passed and every attack's number is within reach of the "
                             "audited worst case.")
                continue
            lines.append(f"Seed {s}: not to be trusted:")
            lines += [f"- {sentence}" for sentence in sentences]
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    audit_runs(f.workdirs, f.outdir, surrogate=f.surrogate, budget=f.budget, eps=f.eps, norm=f.norm,
               num_samples=f.num_samples, seed=f.seed)
    print((pathlib.Path(f.outdir).expanduser().resolve() / "audit.md").read_text())


if __name__ == "__main__":
    define_flags()
    if {"-h", "--help", "-?"} & set(sys.argv[1:]):
        app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)  # absl's own --help exits 1
    app.run(main)
