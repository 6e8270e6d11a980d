"""Launch a sweep: decide per run (done: skip; its job still queued or running: skip; otherwise
submit, resuming from its last checkpoint), print the plan, submit, record the jobs."""
from __future__ import annotations

import dataclasses
import pathlib
import shlex
import sys
import time
from typing import Mapping, Sequence

from gfa_jax.sweeps import executors, job, ledger, status
from gfa_jax.sweeps.sweep_file import ResolvedRun, Sweep, build_config

ACTIONS = ("done", "live", "start", "resume")


@dataclasses.dataclass(frozen=True)
class Decision:
    run: ResolvedRun
    workdir: pathlib.Path
    action: str  # one of ACTIONS
    detail: str


def decide(run: ResolvedRun, workdir: pathlib.Path, config, live: status.RunStatus | None) -> Decision:
    """``done`` when finished, ``live`` when its last job still runs or waits, else ``start`` or
    ``resume`` (from the last checkpoint, which ``train_and_evaluate`` restores)."""
    if job.is_finished(workdir, config):
        return Decision(run, workdir, "done", "finished")
    if live is not None and live.state in ("running", "pending") and "not submitted" not in live.detail:
        return Decision(run, workdir, "live", live.detail)
    epochs = job.checkpoint_epochs(workdir)
    if epochs:
        return Decision(run, workdir, "resume", f"from epoch {epochs[-1]} of {config.num_epochs}")
    return Decision(run, workdir, "start", f"{config.num_epochs} epochs")


def plan(sweep: Sweep, sweep_dir: pathlib.Path) -> list[Decision]:
    """Every run's decision; builds and validates every run's config first (a bad override fails
    here, before anything is submitted)."""
    configs = [build_config(run) for run in sweep.runs]
    submissions = ledger.latest_submissions(sweep_dir)
    live_slurm = executors.live_slurm_jobs() if any(s["executor"] == "slurm" for s in submissions.values()) else {}
    decisions = []
    for run, config in zip(sweep.runs, configs):
        workdir = ledger.run_workdir(sweep_dir, run)
        submission = submissions.get(run.name)
        current = None
        if submission is not None:
            current = status.run_status({"name": run.name, "workdir": str(workdir)}, submission, live_slurm)
        decisions.append(decide(run, workdir, config, current))
    return decisions


def main_command(decision: Decision) -> str:
    """The equivalent command line of one run (what the job does, in-process)."""
    argv = [sys.executable, "-m", "gfa_jax.main", *decision.run.config_argv(), f"--workdir={decision.workdir}"]
    return shlex.join(argv)


def describe(decisions: Sequence[Decision]) -> str:
    counts = ", ".join(f"{sum(d.action == a for d in decisions)} {a}" for a in ACTIONS)
    lines = [f"{len(decisions)} runs: {counts}"]
    for d in decisions:
        lines.append(f"{d.action:6s} {d.run.name}  {d.detail}")
        if d.action in ("start", "resume"):
            lines.append(f"       {main_command(d)}")
    return "\n".join(lines)


def submit(decisions: Sequence[Decision], sweep_dir: pathlib.Path, kind: str, *, slurm: Mapping | None = None,
           job_env: Mapping[str, str] | None = None, local_parallelism: int = 1, job_name: str = "gfa_jax") -> list:
    """Submit the ``start`` / ``resume`` runs and record them in ``jobs.jsonl``. Local runs go
    ``local_parallelism`` at a time and this waits for them; SLURM jobs are left to the queue."""
    todo = [d for d in decisions if d.action in ("start", "resume")]
    if not todo:
        return []
    executor = executors.make_executor(kind, pathlib.Path(sweep_dir) / "submitit", slurm=slurm,
                                       job_env=job_env, job_name=job_name)
    waves = [todo] if kind == "slurm" else [todo[i:i + local_parallelism] for i in range(0, len(todo), local_parallelism)]
    submitted = []
    for wave in waves:
        jobs = executors.submit(executor, [job.TrainJob(d.run, str(d.workdir)) for d in wave])
        ledger.record_submissions(sweep_dir, [
            {"run": d.run.name, "job_id": str(j.job_id), "executor": kind, "folder": str(j.paths.folder),
             "stdout": str(j.paths.stdout), "stderr": str(j.paths.stderr)} for d, j in zip(wave, jobs)])
        for d, j in zip(wave, jobs):
            print(f"submitted {d.run.name} as {kind} job {j.job_id} (log {j.paths.stderr})", flush=True)
        if kind != "slurm":
            for j in jobs:
                j.wait()
        submitted += jobs
    return submitted


def wait(sweep_dir: pathlib.Path, *, poll_s: float = 5.0, timeout_s: float | None = None) -> list[status.RunStatus]:
    """Poll until no run of the sweep is running or queued; returns the final statuses."""
    started = time.monotonic()
    while True:
        statuses = status.sweep_status(sweep_dir)
        busy = [s for s in statuses if s.state == "running" or (s.state == "pending" and "job" in s.detail)]
        if not busy:
            return statuses
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{len(busy)} runs still busy after {timeout_s} s: {[s.name for s in busy]}")
        time.sleep(poll_s)
