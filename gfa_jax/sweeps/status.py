"""Where every run of a launched sweep stands: done, running, pending or failed.

done: trained (``summary.json``) and, where its config asks, its robustness report complete.
running: its last job runs. pending: queued, or never submitted. failed: its last job ended
without finishing the run (an error, a cancel, a kill, a time limit): with the job's log path,
the error's last line where submitit recorded one, and the epoch it would resume from.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import pickle
from typing import Mapping

import ml_collections
from submitit.core.utils import JobPaths

from gfa_jax.sweeps import executors, job, ledger

STATES = ("done", "running", "pending", "failed")
QUEUED = ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED")


@dataclasses.dataclass(frozen=True)
class RunStatus:
    name: str
    state: str
    detail: str
    workdir: str
    log: str | None = None


def saved_config(workdir: pathlib.Path) -> ml_collections.ConfigDict | None:
    path = pathlib.Path(workdir) / "config.json"
    return ml_collections.ConfigDict(json.loads(path.read_text())) if path.exists() else None


def job_outcome(submission: Mapping) -> str:
    """What submitit recorded at the end of a job: ``""`` (success), the error's last line, or why
    there is no record."""
    folder = pathlib.Path(submission["folder"])
    result = JobPaths(folder, job_id=submission["job_id"], task_id=0).result_pickle
    if not result.exists():
        return "ended without a result (cancelled, killed or out of time)"
    try:
        with result.open("rb") as f:
            outcome, value = pickle.load(f)
    except Exception as e:  # noqa: BLE001 - a half-written or foreign pickle is reported, not raised
        return f"unreadable result {result}: {e!r}"
    if outcome == "success":
        return ""
    lines = [line for line in str(value).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "error"


def run_status(run: Mapping, submission: Mapping | None, live_slurm: Mapping[str, str]) -> RunStatus:
    workdir = pathlib.Path(run["workdir"])
    config = saved_config(workdir)
    epochs = job.checkpoint_epochs(workdir)
    progress = f"epoch {epochs[-1]} checkpointed" if epochs else "no checkpoint"
    if config is not None and job.is_finished(workdir, config):
        return RunStatus(run["name"], "done", f"{config.num_epochs} epochs", str(workdir))
    if submission is None:
        return RunStatus(run["name"], "pending", f"not submitted ({progress})", str(workdir))
    job_id, log = submission["job_id"], submission.get("stderr")
    if submission["executor"] == "slurm" and job_id in live_slurm:
        state = live_slurm[job_id]
        if state in QUEUED:
            return RunStatus(run["name"], "pending", f"slurm job {job_id} {state} ({progress})", str(workdir), log)
        if state in ("RUNNING", "COMPLETING"):
            return RunStatus(run["name"], "running", f"slurm job {job_id} ({progress})", str(workdir), log)
    if submission["executor"] == "local" and executors.local_job_alive(job_id):
        return RunStatus(run["name"], "running", f"local job {job_id} ({progress})", str(workdir), log)
    outcome = job_outcome(submission) or "job ended but the run is not finished"
    return RunStatus(run["name"], "failed", f"job {job_id}: {outcome} ({progress})", str(workdir), log)


def sweep_status(sweep_dir: pathlib.Path) -> list[RunStatus]:
    manifest = ledger.read_manifest(sweep_dir)
    submissions = ledger.latest_submissions(sweep_dir)
    live = executors.live_slurm_jobs() if any(s["executor"] == "slurm" for s in submissions.values()) else {}
    return [run_status(run, submissions.get(run["name"]), live) for run in manifest["runs"]]


def format_status(statuses: list[RunStatus]) -> str:
    counts = ", ".join(f"{sum(s.state == state for s in statuses)} {state}" for state in STATES)
    lines = [f"{len(statuses)} runs: {counts}"]
    for s in statuses:
        lines.append(f"{s.state:8s} {s.name}  {s.detail}")
        if s.state == "failed" and s.log:
            lines.append(f"         log: {s.log}")
    return "\n".join(lines)
