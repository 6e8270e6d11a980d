"""Command line for sweeps (``configs/sweeps/<name>.py``) on SLURM or on this machine.

    python -m gfa_jax.launch configs/sweeps/<name>.py[:arg] --executor=local|slurm
        [--slurm.partition=P --slurm.time=4:00:00 --slurm.gpus_per_job=1 --slurm.array_parallelism=8
         --slurm.ntasks=1 --slurm.cpus_per_task=4] [--sweep_dir=runs/sweeps/<name>]
        [--set=data.data_dir=/data ...] [--job_env=JAX_PLATFORMS=cpu ...] [--dry_run] [--wait]
    python -m gfa_jax.launch status SWEEP      done / running / pending / failed, with failure logs
    python -m gfa_jax.launch collect SWEEP     summary + robustness tables under <sweep_dir>/collect/
    python -m gfa_jax.launch workdirs SWEEP    the runs' workdirs, one a line (for gfa_table, evaluate)

SWEEP is a sweep directory or the sweep file spec it was launched with (then ``--sweep_dir`` or its
default). Every run's workdir is ``<sweep_dir>/runs/<name>``, its name read from its config and
overrides plus a hash; launching again skips finished runs and runs whose job is still queued or
running, and resumes the others from their last checkpoint. SLURM jobs that are preempted or reach
their time limit requeue themselves (up to 3 timeouts) and resume.
"""
from __future__ import annotations

import pathlib
import sys

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from gfa_jax import console
from gfa_jax.sweeps import collect, launcher, ledger, status
from gfa_jax.sweeps.sweep_file import load_sweep, parse_assignments


def slurm_defaults() -> ml_collections.ConfigDict:
    slurm = ml_collections.ConfigDict()
    slurm.partition = ""
    slurm.time = "24:00:00"  # minutes, H:MM:SS or D-HH:MM:SS
    slurm.gpus_per_job = 0
    slurm.cpus_per_task = 1
    slurm.ntasks = 1  # tasks per node; >1 for multi-host JAX (SLURM sets SLURM_PROCID, SLURM_NTASKS)
    slurm.nodes = 1
    slurm.mem_gb = 0  # 0: SLURM's default
    slurm.array_parallelism = 256  # array tasks running at once
    slurm.constraint = ""
    slurm.account = ""
    slurm.qos = ""
    return slurm


_EXECUTOR = flags.DEFINE_enum("executor", "local", ["local", "slurm"], "Where runs go.")
_SLURM = config_flags.DEFINE_config_dict("slurm", slurm_defaults(), "SLURM settings: --slurm.partition=... etc.")
_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "Sweep directory; default runs/sweeps/<sweep name>.")
_SET = flags.DEFINE_multi_string("set", [], "key=value: a config override added to every run (and its name).")
_JOB_ENV = flags.DEFINE_multi_string("job_env", [], "NAME=value exported to every job, e.g. JAX_PLATFORMS=cpu.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print what would be submitted; submit nothing.")
_WAIT = flags.DEFINE_bool("wait", False, "With --executor=slurm, wait until every job has ended, then print the status.")
_LOCAL_PARALLELISM = flags.DEFINE_integer("local_parallelism", 1, "Local runs at a time.")
_JOB_NAME = flags.DEFINE_string("job_name", "gfa_jax", "SLURM job name.")

COMMANDS = ("status", "collect", "workdirs")


def sweep_dir_for(spec: str) -> pathlib.Path:
    """A sweep directory given, or the directory of the sweep file spec (``--sweep_dir`` or default)."""
    path = pathlib.Path(spec).expanduser()
    if path.is_dir():  # read_manifest says so when it is not a launched sweep's
        return path.resolve()
    if _SWEEP_DIR.value:
        return pathlib.Path(_SWEEP_DIR.value).expanduser().resolve()
    return (pathlib.Path("runs/sweeps") / load_sweep(spec).name).resolve()


def launch(spec: str) -> None:
    extra = parse_assignments(_SET.value)
    sweep = load_sweep(spec, extra)
    sweep_dir = pathlib.Path(_SWEEP_DIR.value or f"runs/sweeps/{sweep.name}").expanduser().resolve()
    decisions = launcher.plan(sweep, sweep_dir)
    print(f"Sweep {sweep.name} ({sweep.file}) in {sweep_dir}, executor {_EXECUTOR.value}")
    print(launcher.describe(decisions), flush=True)
    if _DRY_RUN.value:
        print("Dry run: nothing submitted.")
        return
    ledger.write_manifest(sweep_dir, sweep, extra)
    launcher.submit(decisions, sweep_dir, _EXECUTOR.value, slurm=_SLURM.value.to_dict(),
                    job_env=parse_assignments(_JOB_ENV.value), local_parallelism=_LOCAL_PARALLELISM.value,
                    job_name=_JOB_NAME.value)
    if _EXECUTOR.value == "local" or _WAIT.value:
        statuses = launcher.wait(sweep_dir)
        print(status.format_status(statuses))
        if any(s.state == "failed" for s in statuses):
            sys.exit(1)


def main(argv) -> None:
    console.configure_logging()
    if len(argv) == 2 and argv[1] not in COMMANDS:
        launch(argv[1])
    elif len(argv) == 3 and argv[1] in COMMANDS:
        sweep_dir = sweep_dir_for(argv[2])
        if argv[1] == "status":
            print(status.format_status(status.sweep_status(sweep_dir)))
        elif argv[1] == "collect":
            for name, path in collect.collect(sweep_dir).items():
                print(f"wrote {path}")
        else:
            print("\n".join(run["workdir"] for run in ledger.read_manifest(sweep_dir)["runs"]))
    else:
        raise app.UsageError(f"Usage: launch SWEEP_FILE[:arg] [flags] | launch {{{','.join(COMMANDS)}}} SWEEP; "
                             f"got {argv[1:]}")


def run() -> None:
    console.run_app(main)


if __name__ == "__main__":
    run()
