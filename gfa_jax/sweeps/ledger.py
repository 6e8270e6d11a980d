"""A sweep's directory: its manifest and the record of every submission.

    <sweep_dir>/sweep.json      the sweep file, its arg, the --set overrides and every run (name,
                                config, arg, overrides, workdir): what status and collect read
    <sweep_dir>/jobs.jsonl      one line per submitted job: run, job id, executor, log paths, time
    <sweep_dir>/submitit/       submitit's pickles and logs
    <sweep_dir>/runs/<name>/    each run's workdir (gfa_jax.metrics_io layout)
    <sweep_dir>/collect/        the tables of ``launch collect``
"""
from __future__ import annotations

import json
import pathlib
import time
from typing import Mapping, Sequence

from gfa_jax import files
from gfa_jax.sweeps.sweep_file import ResolvedRun, Sweep


def manifest_path(sweep_dir: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(sweep_dir) / "sweep.json"


def jobs_path(sweep_dir: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(sweep_dir) / "jobs.jsonl"


def run_workdir(sweep_dir: pathlib.Path, run: ResolvedRun) -> pathlib.Path:
    return pathlib.Path(sweep_dir).resolve() / "runs" / run.name


def write_manifest(sweep_dir: pathlib.Path, sweep: Sweep, extra_overrides: Mapping[str, str]) -> dict:
    manifest = {
        "name": sweep.name,
        "file": str(sweep.file),
        "arg": sweep.arg,
        "set": dict(extra_overrides),
        "runs": [{"name": r.name, "config": r.config_rel, "config_file": str(r.config_file), "arg": r.arg,
                  "overrides": dict(r.overrides), "workdir": str(run_workdir(sweep_dir, r))} for r in sweep.runs],
    }
    files.write_json(manifest_path(sweep_dir), manifest)
    return manifest


def read_manifest(sweep_dir: pathlib.Path) -> dict:
    path = manifest_path(sweep_dir)
    if not path.exists():
        raise FileNotFoundError(f"No {path}: launch the sweep first (or pass its --sweep_dir).")
    return json.loads(path.read_text())


def record_submissions(sweep_dir: pathlib.Path, entries: Sequence[dict]) -> None:
    """Append the submissions to ``jobs.jsonl`` (rewritten atomically: it stays small)."""
    path = jobs_path(sweep_dir)
    old = path.read_text() if path.exists() else ""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    new = "".join(json.dumps({**entry, "submitted": stamp}, sort_keys=True) + "\n" for entry in entries)
    files.write_text_atomic(path, old + new)


def latest_submissions(sweep_dir: pathlib.Path) -> dict[str, dict]:
    """The last submission of every run that has one."""
    path = jobs_path(sweep_dir)
    if not path.exists():
        return {}
    latest = {}
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            latest[entry["run"]] = entry
    return latest
