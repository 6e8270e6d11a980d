"""The robustness audit (:mod:`gfa_jax.evaluation.audit`) of trained runs: every seed of every run on
the same samples, ``audit.json`` and ``audit.md`` written atomically after each run, and resumed.

- :func:`audit_compared_runs`: the audit of the runs a robustness report compares, on its attacked
  samples (:func:`gfa_jax.evaluation.robustness.evaluate_runs` calls it when ``robustness.audit``);
  the transfer source is the run labelled ``standard`` among them (none for that run itself).
- :func:`audit_runs`: the same from workdirs, with an explicit surrogate run (``python -m gfa_jax.audit``).

A run whose entry in ``audit.json`` was made with the same settings (eps, norm, budget, seed, samples,
surrogate) is not audited again.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import pathlib
import zlib
from typing import Mapping, Sequence

import jax
import ml_collections
import numpy as np
from jax.tree_util import Partial

from gfa_jax import config as gfa_config
from gfa_jax import data, files, losses
from gfa_jax.evaluation.audit import BUDGETS, AuditReport, audit, explain, unbounded_eps
from gfa_jax.evaluation.runs import TrainedRun, load_run, load_runs, select_samples
from gfa_jax.models.state import inference_apply
from gfa_jax.training import multiseed

logger = logging.getLogger(__name__)

BOUNDS = tuple(data.MODEL_INPUT_BOUNDS)
SURROGATE_LABEL = "standard"

Reports = dict[str, dict[int, AuditReport]]  # run label -> seed -> report


def seed_logits_fns(run: TrainedRun) -> list[Partial]:
    """One ``logits_fn`` per seed, as pytrees over the same apply function (compiled once per run)."""
    apply = functools.partial(inference_apply, run.model)  # one function for every seed: compiled once
    return [Partial(apply, {"params": multiseed.unstack(run.params, i), **multiseed.unstack(run.model_state, i)})
            for i in range(len(run.seeds))]


def audit_run(run: TrainedRun, x, y, key, *, eps: float, norm: str = "linf", budget: str = "quick",
              surrogate: TrainedRun | None = None) -> dict[int, AuditReport]:
    """Audit every seed of ``run`` on ``(x, y)`` (model inputs); seed ``i`` takes the surrogate's seed
    ``i`` (modulo its count) as transfer source."""
    training_loss = losses.get_task_loss(run.config.get("task_loss", "mse"))
    surrogate_fns = seed_logits_fns(surrogate) if surrogate is not None else []
    reports = {}
    for i, (run_seed, logits_fn) in enumerate(zip(run.seeds, seed_logits_fns(run))):
        surrogate_fn = surrogate_fns[i % len(surrogate_fns)] if surrogate_fns else None
        reports[run_seed] = audit(logits_fn, x, y, jax.random.fold_in(key, i), eps=eps, norm=norm, bounds=BOUNDS,
                                  surrogate_logits_fn=surrogate_fn, budget=budget, training_loss=training_loss)
        logger.info("%s seed %d: %s, audited worst case %.1f %%", run.label, run_seed, reports[run_seed].verdict,
                    100 * reports[run_seed].robust_accuracy)
    return reports


def _run_entry(run: TrainedRun, reports: dict[int, AuditReport], settings: dict) -> dict:
    return {"workdir": str(run.workdir), "task_loss": run.config.get("task_loss", "mse"), "settings": settings,
            "seeds": {str(s): rep.to_dict() for s, rep in reports.items()}}


def _load_reports(entry: Mapping) -> dict[int, AuditReport]:
    return {int(s): AuditReport.from_dict(rep) for s, rep in entry["seeds"].items()}


def _audit_and_write(runs: Sequence[TrainedRun], surrogates: Mapping[str, TrainedRun | None], x, y, out: pathlib.Path,
                     settings: dict) -> Reports:
    """Audit each run not yet in ``out/audit.json`` with these settings; rewrite the files after each."""
    path = out / "audit.json"
    saved = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    result = {"settings": settings, "runs": dict(saved.get("runs", {}))}
    reports: Reports = {}
    key = jax.random.key(settings["seed"])
    for run in runs:
        run_settings = {**settings, "surrogate": str(surrogates[run.label].workdir) if surrogates[run.label] else None}
        entry = result["runs"].get(run.label)
        if entry and entry.get("workdir") == str(run.workdir) and entry.get("settings") == run_settings:
            reports[run.label] = _load_reports(entry)
            logger.info("%s: audited before with these settings, not again", run.label)
            continue
        run_key = jax.random.fold_in(key, zlib.crc32(run.label.encode()) & 0x7FFFFFFF)
        reports[run.label] = audit_run(run, x, y, run_key, eps=settings["eps"], norm=settings["norm"],
                                       budget=settings["budget"], surrogate=surrogates[run.label])
        result["runs"][run.label] = _run_entry(run, reports[run.label], run_settings)
        files.write_json(path, result)
    files.write_json(path, result)
    files.write_text_atomic(out / "audit.md", markdown(reports, {**settings, "surrogate": any(surrogates.values())}))
    return reports


def _samples_digest(y) -> str:
    return hashlib.sha256(np.asarray(y, np.int64).tobytes()).hexdigest()[:16]


def audit_compared_runs(runs: Sequence[TrainedRun], x, y, outdir: str | pathlib.Path, *, eps: float,
                        budget: str = "quick", seed: int = 0, norm: str = "linf") -> Reports:
    """Audit every seed of every compared run on the report's samples ``(x, y)`` (model inputs); the
    run labelled ``standard`` is every other run's transfer source. Writes ``audit.json``/``audit.md``."""
    if budget not in BUDGETS:
        raise ValueError(f"audit budget {budget!r} is not one of {sorted(BUDGETS)}")
    standard = next((run for run in runs if run.label == SURROGATE_LABEL), None)
    surrogates = {run.label: standard if standard is not None and run is not standard else None for run in runs}
    settings = {"eps": float(eps), "norm": norm, "budget": budget, "bounds": list(BOUNDS), "seed": int(seed),
                "num_samples": int(len(y)), "samples": _samples_digest(y),
                "unbounded_eps": max(unbounded_eps(norm, BOUNDS, x.shape[1:]), float(eps))}
    return _audit_and_write(runs, surrogates, x, y, pathlib.Path(outdir), settings)


def audit_runs(workdirs: Sequence[str], outdir: str, *, surrogate: str | None = None, budget: str = "quick",
               eps: float | None = None, norm: str = "linf", num_samples: int = 500, seed: int = 0) -> dict:
    """Audit every seed of every run on the test samples every seed of every run (and of the surrogate)
    classifies correctly; write ``audit.json`` and ``audit.md`` to ``outdir``; return the JSON."""
    if budget not in BUDGETS:
        raise ValueError(f"audit budget {budget!r} is not one of {sorted(BUDGETS)}")
    paths = [pathlib.Path(w).expanduser().resolve() for w in workdirs]
    surrogate_path = pathlib.Path(surrogate).expanduser().resolve() if surrogate else None
    out = pathlib.Path(outdir).expanduser().resolve()
    for path in paths + ([surrogate_path] if surrogate_path else []):
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path} has no config.json: --workdirs and --surrogate must name training "
                                    "workdirs.")
    first = load_config(paths[0])
    if eps is None:
        eps = first.robustness.table_eps_linf if norm == "linf" else first.robustness.table_eps_l2
    dataset = data.load_dataset(first.data.name, source=first.data.source, data_dir=first.data.data_dir,
                                test_size=first.data.test_size, train_size=1, download=first.data.download)
    input_shape = dataset.test_images.shape[1:]
    runs = [run for p in paths for run in load_runs(p, dataset.num_classes, input_shape)]
    reference = load_run(surrogate_path, dataset.num_classes, input_shape) if surrogate_path else None
    indices = select_samples(runs + ([reference] if reference else []), dataset.test_images, dataset.test_labels,
                             protocol="common_correct", num_samples=num_samples,
                             batch_size=first.robustness.batch_size)
    if len(indices) == 0:
        raise ValueError("No test sample is classified correctly by every run and seed.")
    x = data.to_model_range(jax.numpy.asarray(dataset.test_images[indices]))
    y = jax.numpy.asarray(dataset.test_labels[indices])
    logger.info("Auditing %d common-correct test samples at %s eps %g (budget %s)", len(indices), norm, eps, budget)
    settings = {"eps": float(eps), "norm": norm, "budget": budget, "bounds": list(BOUNDS),
                "num_samples": int(len(indices)), "samples": _samples_digest(y), "seed": seed,
                "unbounded_eps": max(unbounded_eps(norm, BOUNDS, input_shape), float(eps))}
    _audit_and_write(runs, {run.label: reference for run in runs}, x, y, out, settings)
    result = json.loads((out / "audit.json").read_text())
    result["settings"]["surrogate"] = str(surrogate_path) if surrogate_path else None
    return result


def load_config(workdir: pathlib.Path):
    """The upgraded ``config.json`` of a training workdir."""
    return ml_collections.ConfigDict(gfa_config.upgrade_legacy(json.loads((workdir / "config.json").read_text())))


# ----------------------------------------------------------------------------- Markdown


def _cell(ind: dict) -> str:
    value = ind["value"]
    text = "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.3g}"
    return f"**{text}** (flag)" if ind["flagged"] else text


def markdown(reports: Reports, settings: dict) -> str:
    """``audit.md``: per run, verdicts, accuracies and indicators per seed, then the reasons in words."""
    lines = [f"# Robustness audit ({settings['norm']} eps {settings['eps']:g}, budget {settings['budget']}, "
             f"{settings['num_samples']} test samples, unbounded eps {settings['unbounded_eps']:.3g})", ""]
    if not settings.get("surrogate"):
        lines += ["No surrogate given: transfer and misdirection are not compared with an undefended model.", ""]
    for label, by_seed in reports.items():
        seeds = list(by_seed)
        header = "| | " + " | ".join(f"seed {s}" for s in seeds) + " |"
        rule = "|---|" + "---|" * len(seeds)
        lines += [f"## {label}", "", header, rule,
                  "| verdict | " + " | ".join(by_seed[s].verdict for s in seeds) + " |",
                  "| audited worst case | " + " | ".join(f"{100 * by_seed[s].robust_accuracy:.1f} %" for s in seeds)
                  + " |"]
        attack_names = list(dict.fromkeys(a for s in seeds for a in by_seed[s].attack_accuracy))
        for a in attack_names:
            cells = []
            for s in seeds:
                acc = by_seed[s].attack_accuracy.get(a)
                cell = "" if acc is None else f"{100 * acc:.1f} %"
                cells.append(cell + (" (untrusted)" if a in by_seed[s].untrusted_attacks else ""))
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
        lines += ["", "| indicator | kind | threshold | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                  "|---|---|---|" + "---|" * len(seeds)]
        names = list(dict.fromkeys(n for s in seeds for n in by_seed[s].indicators))
        for name in names:
            inds = [by_seed[s].indicators.get(name) for s in seeds]
            first = next(i for i in inds if i)
            threshold = first["threshold"]
            lines.append(f"| {name} | {first.get('kind', '')} | "
                         f"{'report-only' if threshold is None else f'{threshold:g}'} | "
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
