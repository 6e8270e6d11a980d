"""What one sweep run does on its machine, and how far a run's workdir has got.

:class:`TrainJob` is the callable submitit pickles and runs: it builds the run's config, trains
in-process (``train.train_and_evaluate``, which resumes from the workdir's last checkpoint), then
writes the robustness report of the run and its sweep figures (``after_training.report_run``; the
report resumes from its last finished attack), exactly what ``python -m gfa_jax.main --config ... --workdir ...`` does, multi-host
included: the tasks of a multi-task job (``--slurm.ntasks``) train the run together
(:mod:`gfa_jax.training.distributed`), and task 0 writes its files and robustness report. It is
``submitit.helpers.Checkpointable``: a preempted SLURM job (SIGUSR2) requeues itself, and the
requeued job resumes from the checkpoints.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import socket

import submitit

from gfa_jax.attacks import parse_attack_names as attack_names
from gfa_jax.evaluation import after_training
from gfa_jax.training import distributed, train
from gfa_jax.sweeps.sweep_file import ResolvedRun, build_config

ROBUSTNESS_DIR = after_training.ROBUSTNESS_DIR


def checkpoint_epochs(workdir: pathlib.Path) -> list[int]:
    """Epochs with a committed checkpoint (Orbax writes a step's directory under a temporary name
    and renames it when complete, so a bare number is a complete checkpoint)."""
    directory = pathlib.Path(workdir) / "checkpoints"
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def robustness_complete(workdir: pathlib.Path, config) -> bool:
    """Whether ``<workdir>/robustness`` holds the report (``table.md``, written last) and a row of
    every configured attack for this run."""
    out = pathlib.Path(workdir) / ROBUSTNESS_DIR
    results = out / "results.jsonl"
    if not (out / "table.md").exists() or not results.exists():
        return False
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    attacked = {r["attack"] for r in rows if r.get("workdir") == str(pathlib.Path(workdir).resolve())}
    return set(attack_names(config.robustness.attacks)) <= attacked


def is_finished(workdir: pathlib.Path, config) -> bool:
    """Trained (``summary.json`` is written at the very end) and, where the config asks for one,
    its robustness report complete."""
    if not (pathlib.Path(workdir) / "summary.json").exists():
        return False
    return not config.robustness.enabled or robustness_complete(workdir, config)


def task_environment() -> dict:
    """Rank, task count and node of this process in its job (SLURM sets them; 0 of 1 locally).
    The tasks of a multi-task job (``--slurm.ntasks``) run one multi-host JAX program."""
    try:
        env = submitit.JobEnvironment()
        return {"job_id": env.job_id, "rank": env.global_rank, "num_tasks": env.num_tasks,
                "node": env.hostname}
    except RuntimeError:  # not inside a submitit job
        return {"job_id": None, "rank": 0, "num_tasks": 1, "node": socket.gethostname()}


class TrainJob(submitit.helpers.Checkpointable):
    """Train one run into its workdir and evaluate it; returns the summary dict."""

    def __init__(self, run: ResolvedRun, workdir: str):
        self.run = run
        self.workdir = str(pathlib.Path(workdir).resolve())

    def __call__(self) -> dict:
        logging.getLogger().setLevel(logging.INFO)
        distributed.initialize_from_environment()  # several tasks: one JAX program over all of them
        task = task_environment()
        config = build_config(self.run)
        logging.info("Run %s in %s (task %d of %d on %s, job %s, JAX_PLATFORMS=%s)", self.run.name, self.workdir,
                     task["rank"], task["num_tasks"], task["node"], task["job_id"], os.environ.get("JAX_PLATFORMS"))
        epochs = checkpoint_epochs(pathlib.Path(self.workdir))
        logging.info("Starting from epoch %d of %d", epochs[-1] if epochs else 0, config.num_epochs)
        summary = train.train_and_evaluate(config, self.workdir)
        distributed.on_writer(after_training.report_run, pathlib.Path(self.workdir), config, summary)
        return summary

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on preemption or timeout: resubmit this same job. Its state is on disk
        (the workdir's checkpoints), so nothing else needs saving."""
        logging.info("Run %s interrupted: requeued; it resumes from its last checkpoint.", self.run.name)
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)
