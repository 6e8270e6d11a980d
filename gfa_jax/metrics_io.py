"""The workdir: its layout, metrics as JSON lines, the summary, and the progress bar.

Layout of a run's workdir::

    config.json        the full config of the run (a restart with another config is refused)
    metrics.jsonl      one line per (epoch, seed, split): accuracy, mse, per-layer GFA mean/std
    summary.json       mean +/- std over seeds of the last epoch (Tables 1 and 5 of the paper)
    checkpoints/<epoch>/  Orbax checkpoints of the stacked train state

Every file is written atomically (temporary file + rename), so a killed run never leaves half a file.
"""
from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import NamedTuple, Sequence

import numpy as np
import tqdm


class RunDir(NamedTuple):
    root: pathlib.Path
    config: pathlib.Path
    metrics: pathlib.Path
    summary: pathlib.Path
    checkpoints: pathlib.Path


def write_text_atomic(path: pathlib.Path, text: str) -> None:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; results are for others to read too
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: pathlib.Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def prepare_workdir(workdir: str, config) -> RunDir:
    """Create the workdir, or check that the run already in it was started with the same config."""
    root = pathlib.Path(workdir).expanduser().resolve()
    run = RunDir(root, root / "config.json", root / "metrics.jsonl", root / "summary.json", root / "checkpoints")
    config_json = json.loads(config.to_json_best_effort(sort_keys=True))
    if run.config.exists():
        saved = json.loads(run.config.read_text())
        if saved != config_json:
            changed = sorted(k for k in set(saved) | set(config_json) if saved.get(k) != config_json.get(k))
            raise ValueError(
                f"{root} holds a run with a different config (differs in: {', '.join(changed)}). "
                "Resume it with the same config, or pass a new --workdir."
            )
    else:
        write_json(run.config, config_json)
    return run


def load_records(path: pathlib.Path, *, up_to_epoch: int) -> list[dict]:
    """The metrics lines of epochs ``<= up_to_epoch`` (later ones belong to an unsaved epoch)."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["epoch"] <= up_to_epoch]


def write_records(path: pathlib.Path, records: Sequence[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def epoch_records(epoch: int, seeds, train_metrics: dict, evaluations: dict, train_seconds: float) -> list[dict]:
    """Lines for one epoch: per seed, the running train-batch means and each evaluated split."""
    records = []
    for i, seed in enumerate(seeds):
        fit = {k: float(np.asarray(v)[i]) for k, v in train_metrics.items()}
        records.append({"epoch": epoch, "seed": seed, "split": "train_batches", "seconds": train_seconds, **fit})
        for split, result in evaluations.items():
            values = {k: float(np.asarray(v)[i]) for k, v in result.items()}
            records.append({"epoch": epoch, "seed": seed, "split": split, **values})
    return records


def mean_std(values) -> dict:
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def epoch_line(epoch: int, evaluations: dict) -> str:
    test = evaluations["test"]
    gfa = " ".join(
        f"{k.split('/')[1]}={np.mean(v):+.3f}" for k, v in test.items() if k.startswith("gfa/") and k.endswith("/mean")
    )
    return f"epoch {epoch}: test accuracy {np.mean(test['accuracy']):.4f} (mean over seeds), test GFA {gfa}"


def summarize(records: Sequence[dict], config, seeds, layer_names, dataset) -> dict:
    """Mean +/- std over seeds, at the last epoch, of accuracy and each layer's mean GFA per split."""
    last = max(r["epoch"] for r in records)
    summary = {
        "name": config.name,
        "strategy": config.strategy,
        "dataset": dataset.name,
        "data_source": dataset.source,
        "model": config.model.name,
        "epochs": last,
        "seeds": list(seeds),
        "layers": list(layer_names),
        "beta": list(config.gfa.beta),
    }
    for split in ("train", "test"):
        rows = [r for r in records if r["epoch"] == last and r["split"] == split]
        if not rows:
            continue
        summary[f"{split}_accuracy"] = mean_std([r["accuracy"] for r in rows])
        summary[f"{split}_gfa"] = {name: mean_std([r[f"gfa/{name}/mean"] for r in rows]) for name in layer_names}
        if "gaie/mean" in rows[0]:  # runs with the GAIE regulariser (gfa_jax.gaie)
            summary[f"{split}_gaie"] = mean_std([r["gaie/mean"] for r in rows])
    return summary


def progress_bar(*, total: int, initial: int, desc: str) -> tqdm.tqdm:
    return tqdm.tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True, mininterval=1.0)
