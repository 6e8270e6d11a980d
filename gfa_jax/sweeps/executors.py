"""submitit executors for the launcher: a SLURM job array, or local processes on this machine.

``slurm``: every run one task of a job array (``executor.batch()``), ``--signal=USR2@90`` so a
preempted or timed-out run requeues itself (:class:`gfa_jax.sweeps.job.TrainJob` is checkpointable).
``local``: submitit's ``LocalExecutor``, at most ``parallelism`` runs at a time; the launcher waits.
``debug``: submitit's ``DebugExecutor``, in the launcher's own process (for pdb).

Jobs run with the launcher's Python (``sys.executable``) and import ``gfa_jax`` from the checkout the
launcher runs from (``PYTHONPATH``), with ``job_env`` (e.g. ``JAX_PLATFORMS=cpu``) exported.
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
from typing import Mapping, Sequence

import submitit

import gfa_jax

EXECUTORS = ("local", "slurm", "debug")
# The checkout holding the gfa_jax the launcher runs (its configs/ package too, for config files).
REPO_ROOT = pathlib.Path(gfa_jax.__file__).resolve().parent.parent


def slurm_minutes(text: str | int) -> int:
    """A SLURM time limit as minutes: ``90``, ``"90"``, ``"1:30:00"``, ``"2-00:00:00"``, ``"45:00"``."""
    text = str(text).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise ValueError(f"Cannot read the time limit {text!r}; use minutes, H:MM:SS or D-HH:MM:SS.")
    days, first, second, third = match.groups()
    if second is None:  # minutes, or D-HH
        minutes = int(first) * 60 if days else int(first)
    elif third is None:  # MM:SS, or D-HH:MM
        minutes = int(first) * 60 + int(second) if days else int(first) + (int(second) > 0)
    else:  # H:MM:SS
        minutes = int(first) * 60 + int(second) + (int(third) > 0)
    return minutes + int(days or 0) * 24 * 60


def job_environment(job_env: Mapping[str, str]) -> dict[str, str]:
    """The variables a job needs: ``job_env``, and ``PYTHONPATH`` led by the launcher's checkout."""
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": python_path, **job_env}


def make_executor(kind: str, folder: pathlib.Path, *, slurm: Mapping | None = None,
                  job_env: Mapping[str, str] | None = None, timeout_min: int = 24 * 60,
                  job_name: str = "gfa_jax") -> submitit.Executor:
    """An executor writing its pickles and logs to ``folder``.

    ``slurm``: the launcher's ``--slurm.*`` settings (partition, time, gpus_per_job, cpus_per_task,
    ntasks, nodes, mem_gb, array_parallelism, constraint, account, qos).
    """
    environment = job_environment(job_env or {})
    folder = pathlib.Path(folder).resolve()
    if kind == "slurm":
        slurm = dict(slurm or {})
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=3)
        parameters = dict(
            job_name=job_name,
            time=slurm_minutes(slurm.get("time") or timeout_min),
            nodes=int(slurm.get("nodes") or 1),
            ntasks_per_node=int(slurm.get("ntasks") or 1),
            cpus_per_task=int(slurm.get("cpus_per_task") or 1),
            array_parallelism=int(slurm.get("array_parallelism") or 256),
            setup=[f"export {k}={_shell_quote(v)}" for k, v in environment.items()],
            stderr_to_stdout=False,
        )
        if slurm.get("gpus_per_job"):
            parameters["gpus_per_node"] = int(slurm["gpus_per_job"])
        if slurm.get("mem_gb"):
            parameters["mem"] = f"{int(slurm['mem_gb'])}GB"
        for key in ("partition", "constraint", "account", "qos"):
            if slurm.get(key):
                parameters[key] = slurm[key]
        executor.update_parameters(**parameters)
        return executor
    os.environ.update(environment)  # local processes inherit the launcher's environment
    if kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=timeout_min)
        return executor
    if kind == "debug":
        return submitit.DebugExecutor(folder=folder)
    raise ValueError(f"Unknown executor {kind!r}; use one of {EXECUTORS}.")


def _shell_quote(value: str) -> str:
    return "'" + str(value).replace("'", "'\\''") + "'"


def submit(executor: submitit.Executor, jobs: Sequence) -> list[submitit.Job]:
    """Submit ``jobs`` (callables) as one SLURM job array, or one by one elsewhere."""
    if isinstance(executor, submitit.SlurmExecutor) and len(jobs) > 1:
        with executor.batch():
            submitted = [executor.submit(job) for job in jobs]
        return submitted
    return [executor.submit(job) for job in jobs]


def live_slurm_jobs() -> dict[str, str]:
    """``{job id: state}`` of the jobs SLURM still lists (array tasks one by one, ``123_4``);
    empty where ``squeue`` is missing or fails."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if out.returncode:
        return {}
    return dict(line.split(None, 1) for line in out.stdout.splitlines() if line.strip())


def local_job_alive(job_id: str) -> bool:
    """Whether the local job's process (its id is the pid) still runs."""
    try:
        pid = int(job_id)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, PermissionError):
        return False
    try:  # a finished child that nobody waited for is a zombie: not running
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
