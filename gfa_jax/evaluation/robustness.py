"""Robustness evaluation of trained runs: every attack over its eps grid, all seeds as one program.

The paper's protocol (DeepDefense, Section 4.1): attack only the test samples that every compared
model (every strategy, every seed) classifies correctly, or, optionally, the whole test set; report
per (strategy, seed, attack, eps) the accuracy under attack and the perturbation's intensity: MSE
(the papers' "Intensive" column), L2 and L-inf norms, averaged over the attacked samples.

For a bounded attack one jitted program takes the stacked seed parameters and the whole eps grid
(``vmap`` over seeds of ``vmap`` over eps) for a batch; the seed axis is sharded across devices.
Minimum-norm attacks (DeepFool, C&W, EAD, ...) have no eps: they report the success rate and the
intensity of the successful perturbations.

Results are appended to ``results.jsonl`` after each (run, attack), so an interrupted evaluation
resumes where it stopped.
"""
from __future__ import annotations

import functools
import json
import logging
import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gfa_jax import attacks, console, data, files
from gfa_jax import config as gfa_config
from gfa_jax.evaluation import audit_runs, figures
from gfa_jax.evaluation import report as robustness_report
from gfa_jax.evaluation.runs import (  # noqa: F401  (re-exported)
    SAMPLE_SELECTION, TrainedRun, load_run, load_runs, predict, select_samples)
from gfa_jax.evaluation.paper_results import layerwise as layerwise_paper_results
from gfa_jax.training import multiseed
from gfa_jax.models.state import inference_logits_fn

logger = logging.getLogger(__name__)


Array = jax.Array


def perturbation_stats(x_adv: Array, x: Array, counted: Array) -> dict[str, Array]:
    """Sums over the ``counted`` samples of the perturbation's per-sample MSE, L2 and L-inf norms."""
    delta = (x_adv - x).reshape(x.shape[0], -1)
    weight = counted.astype(x.dtype)
    return {
        "mse": jnp.sum(weight * jnp.mean(delta**2, -1)),
        "l2": jnp.sum(weight * jnp.sqrt(jnp.sum(delta**2, -1))),
        "linf": jnp.sum(weight * jnp.max(jnp.abs(delta), -1)),
    }


def bounded_attack_batch(params, model_state, x, y, key, eps_grid, *, model, spec: attacks.AttackSpec, kwargs: dict):
    """One batch under one bounded attack: ``[E]`` sums of correct predictions and intensities."""

    def one_eps(eps):
        logits_fn = inference_logits_fn(model, params, model_state)
        x_adv = spec.fn(logits_fn, x, y, key, eps=eps, bounds=data.MODEL_INPUT_BOUNDS, **kwargs)
        correct = jnp.argmax(logits_fn(x_adv), -1) == y
        return {"correct": jnp.sum(correct), **perturbation_stats(x_adv, x, jnp.ones_like(correct))}

    return jax.vmap(one_eps)(eps_grid)


def minimum_norm_attack_batch(params, model_state, x, y, key, *, model, spec: attacks.AttackSpec, kwargs: dict):
    """One batch under one minimum-norm attack: sums of successes and of successful intensities."""
    logits_fn = inference_logits_fn(model, params, model_state)
    result = spec.fn(logits_fn, x, y, key, bounds=data.MODEL_INPUT_BOUNDS, **kwargs)
    return {"success": jnp.sum(result.success), **perturbation_stats(result.x_adv, x, result.success)}


def eps_grid_for(spec: attacks.AttackSpec, robustness: ml_collections.ConfigDict) -> tuple[float, ...]:
    if spec.norm == "linf":
        return tuple(robustness.eps_linf)
    if spec.norm == "l2":
        return tuple(robustness.eps_l2)
    raise ValueError(f"Bounded attack {spec.name} has norm {spec.norm}: no eps grid is configured for it.")


def evaluate_attack(run: TrainedRun, spec: attacks.AttackSpec, images, labels, key, robustness,
                    kwargs: dict, progress, programs: dict | None = None) -> list[dict]:
    """Rows ``{seed, attack, eps, accuracy, mse, l2, linf, ...}`` of one run under one attack.

    ``programs``: jitted attack programs by (workdir, attack), shared by the settings of an
    in-program sweep (same model and shapes), so an attack compiles once per workdir.
    """
    mesh = multiseed.seed_mesh(len(run.seeds))
    params = multiseed.shard_seeds(run.params, mesh)
    model_state = multiseed.shard_seeds(run.model_state, mesh)
    bounded = spec.kind == "bounded"
    chunk = multiseed.seeds_per_vmap(0, mesh, multiseed.unstack(run.params, 0))
    if bounded:
        eps_grid = jnp.asarray(eps_grid_for(spec, robustness), jnp.float32)
        batch_fn = functools.partial(bounded_attack_batch, model=run.model, spec=spec, kwargs=kwargs)
    else:
        eps_grid = None
        batch_fn = functools.partial(minimum_norm_attack_batch, model=run.model, spec=spec, kwargs=kwargs)

    def per_seed(params, model_state, x, y, key, eps_grid):
        extra = (eps_grid,) if bounded else ()
        return multiseed.map_seeds(lambda p, s: batch_fn(p, s, x, y, key, *extra), (params, model_state), chunk)

    programs = {} if programs is None else programs
    per_seed = programs.setdefault((str(run.workdir), spec.name), jax.jit(per_seed))

    totals = None
    batch_size = robustness.batch_size
    for start in range(0, len(labels), batch_size):
        x = data.to_model_range(jnp.asarray(images[start:start + batch_size]))
        y = jnp.asarray(labels[start:start + batch_size])
        batch_key = jax.random.fold_in(key, start)
        sums = per_seed(params, model_state, x, y, batch_key, eps_grid)
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
        progress.update(len(y))
    totals = jax.device_get(totals)
    n = len(labels)
    rows = []
    for i, seed in enumerate(run.seeds):
        base = {"run": run.label, "workdir": str(run.workdir), "seed": seed, "attack": spec.name,
                "norm": spec.norm, "kind": spec.kind, "num_samples": n,
                **{f"hyper/{key}": value for key, value in run.setting.items()}}
        if bounded:
            for j, eps in enumerate(np.asarray(eps_grid)):
                stats = {k: float(v[i, j]) for k, v in totals.items()}
                rows.append({**base, "eps": float(eps), "accuracy": stats["correct"] / n,
                             "mse": stats["mse"] / n, "l2": stats["l2"] / n, "linf": stats["linf"] / n})
        else:
            stats = {k: float(v[i]) for k, v in totals.items()}
            successes = max(stats["success"], 1.0)
            rows.append({**base, "eps": None, "accuracy": 1.0 - stats["success"] / n,
                         "success_rate": stats["success"] / n, "mse": stats["mse"] / successes,
                         "l2": stats["l2"] / successes, "linf": stats["linf"] / successes})
    return rows


def check_settings(outdir: pathlib.Path, robustness: ml_collections.ConfigDict, workdirs: Sequence[str]) -> None:
    """Record the settings of an evaluation in ``outdir``, or refuse to resume one made with others
    (its rows would mix samples, budgets or eps grids).

    Under the ``all`` protocol the attacked samples do not depend on the runs, so an evaluation may
    go on with runs added or left out (finished runs are not attacked again); under
    ``common_correct`` the samples are those every run classifies correctly, so the runs must match.
    """
    settings = {"robustness": json.loads(robustness.to_json_best_effort(sort_keys=True)), "workdirs": list(workdirs),
                "sample_selection": SAMPLE_SELECTION}
    path = outdir / "settings.json"
    if path.exists():
        saved = json.loads(path.read_text())
        saved_robustness = gfa_config.upgrade_legacy({"robustness": saved["robustness"]})["robustness"]
        changed = gfa_config.differences(saved_robustness, settings["robustness"])
        if saved["workdirs"] != settings["workdirs"] and robustness.protocol != "all":
            changed.append(f"workdirs: {saved['workdirs']} (saved), {settings['workdirs']} (now); common_correct "
                           "samples depend on every run (protocol 'all' allows adding runs)")
        if saved.get("sample_selection") != SAMPLE_SELECTION:
            changed.append(f"sample_selection: {saved.get('sample_selection', 'the first num_samples')!r} (saved), "
                           f"{SAMPLE_SELECTION!r} (now)")
        if changed:
            raise ValueError(f"{outdir} holds an evaluation with other settings:\n  " + "\n  ".join(changed)
                             + "\nResume it with the same settings, or pass a new --outdir.")
    files.write_json(path, settings)


def load_results(path: pathlib.Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def audit_attacked_samples(runs: Sequence[TrainedRun], images, labels, out: pathlib.Path,
                           robustness: ml_collections.ConfigDict) -> audit_runs.Reports:
    """The robustness audit of every seed of every run on the first ``audit_num_samples`` attacked
    samples (0: all) at ``audit_eps_linf`` (None: the table's L-inf eps); resumed from ``audit.json``."""
    count = robustness.get("audit_num_samples", 0) or len(labels)
    eps = robustness.get("audit_eps_linf", None)
    eps = robustness.table_eps_linf if eps is None else eps
    x = data.to_model_range(jnp.asarray(images[:count]))
    logger.info("Auditing %d runs on %d samples at L-inf eps %g", len(runs), min(count, len(labels)), eps)
    return audit_runs.audit_compared_runs(runs, x, jnp.asarray(labels[:count]), out, eps=eps,
                                          budget=robustness.get("audit_budget", "quick"), seed=robustness.seed)


def evaluate_runs(workdirs: Sequence[str], outdir: str, robustness: ml_collections.ConfigDict | None = None) -> list[dict]:
    """Attack every run of ``workdirs`` with every configured attack; write rows, table and figures.

    Args:
      workdirs: training workdirs to compare (all on the same dataset and model input shape).
      outdir: where ``results.jsonl``, ``results.csv``, ``table.md`` and ``figures/`` go (with
        ``robustness.audit``, also ``audit.json`` and ``audit.md``: the audit of every seed on the
        attacked samples, resumed for runs already audited with the same settings).
      robustness: the ``config.robustness`` section; default: the first run's.

    Returns:
      the result rows of these runs (including those from an earlier, interrupted evaluation).
    """

    workdirs = [pathlib.Path(w).expanduser().resolve() for w in workdirs]
    first_path = workdirs[0] / "config.json"
    if not first_path.exists():
        raise FileNotFoundError(f"{workdirs[0]} has no config.json: is it the --workdir of a training run?")
    first_config = ml_collections.ConfigDict(gfa_config.upgrade_legacy(json.loads(first_path.read_text())))
    robustness = robustness or first_config.robustness
    dataset = data.load_dataset(
        first_config.data.name, source=first_config.data.source, data_dir=first_config.data.data_dir,
        test_size=first_config.data.test_size, train_size=1, download=first_config.data.download,
    )
    input_shape = dataset.test_images.shape[1:]
    runs = [run for w in workdirs for run in load_runs(w, dataset.num_classes, input_shape)]
    labels_seen = [run.label for run in runs]
    if len(set(labels_seen)) != len(labels_seen):
        raise ValueError(f"Runs must have distinct strategies to sit side by side; got {labels_seen}.")
    indices = select_samples(runs, dataset.test_images, dataset.test_labels, protocol=robustness.protocol,
                             num_samples=robustness.num_samples, batch_size=robustness.batch_size)
    if len(indices) == 0:
        raise ValueError("No test sample is classified correctly by every run and seed; use robustness.protocol='all'.")
    images, labels = dataset.test_images[indices], dataset.test_labels[indices]
    logger.info("Attacking %d test samples (%s protocol)", len(indices), robustness.protocol)

    out = pathlib.Path(outdir).expanduser().resolve()
    results_path = out / "results.jsonl"
    check_settings(out, robustness, [str(run.workdir) for run in runs])
    all_rows = load_results(results_path)  # may hold runs left out this time: kept in the file
    # A run is its workdir and label: the settings of an in-program sweep share one workdir.
    done = {(r["workdir"], r["run"], r["attack"]) for r in all_rows}
    specs = [attacks.get_attack(name) for name in attacks.parse_attack_names(robustness.attacks)]
    todo = [(run, spec) for run in runs for spec in specs if (str(run.workdir), run.label, spec.name) not in done]
    progress = console.progress_bar(total=len(todo) * len(labels), initial=0, desc="robustness", unit="sample")
    key = jax.random.key(robustness.seed)
    programs: dict = {}
    for run, spec in todo:
        progress.set_postfix(run=run.label, attack=spec.name)
        attack_key = jax.random.fold_in(key, specs.index(spec))
        all_rows += evaluate_attack(run, spec, images, labels, attack_key, robustness,
                                    gfa_config.attack_kwargs(robustness, spec.name), progress, programs)
        files.write_text_atomic(results_path, "".join(json.dumps(r) + "\n" for r in all_rows))
    progress.close()
    current = {str(run.workdir) for run in runs}
    rows = [r for r in all_rows if r["workdir"] in current]
    audits = audit_attacked_samples(runs, images, labels, out, robustness) if robustness.get("audit", False) else None
    references = {run.label: layerwise_paper_results.paper_accuracy(run.config.model.name, run.label) for run in runs}
    robustness_report.write_report(rows, out, robustness, [run.label for run in runs],
                                   {label: row for label, row in references.items() if row}, audits)
    if robustness.figures:
        figures.write_figures(runs, data.to_model_range(jnp.asarray(images[:256])), jnp.asarray(labels[:256]), out,
                              eps=robustness.table_eps_linf)
    return rows
