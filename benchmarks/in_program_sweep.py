"""An in-program hyperparameter sweep against one process per member.

    python benchmarks/in_program_sweep.py [--model paper_mlp] [--members-axes JSON] [--processes]

Step level: the train step of every member (seeds x settings of ``--axes``) as one compiled program
against the single-seed program each separate process would run: compile time, steady-state seconds
per step and per member-step, and how many programs were compiled after the swept values changed.
``--processes``: whole runs, ``python -m gfa_jax.main`` once with the axes against once per member
(one seed, the setting written into the config), on the real Fashion-MNIST files
(``/usr/share/datasets/fashion-mnist``, Debian's ``dataset-fashion-mnist``) or ``--data-dir``.
Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gfa_jax import config as gfa_config
from gfa_jax import hyperparameters
from gfa_jax.training import multiseed
from gfa_jax.training.train_state import make_model
from gfa_jax.training.train_step import epoch_keys, epoch_orders, init_members, make_multiseed_step, make_recipe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, time_jitted  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILES = {"paper_mlp": "configs/fmnist_mlp_deep.py", "paper_cnn": "configs/cifar_deep.py"}
INPUT_SHAPES = {"paper_mlp": (28, 28, 1), "paper_cnn": (32, 32, 3)}


def base(model_name: str, batch: int):
    config = gfa_config.base_config()
    config.model.name = model_name
    config.batch_size = batch
    config.gfa.beta = gfa_config.strategy_beta("deep", model_name, 0.1)
    return config


def step_case(config, seeds, axes: dict, steps: int) -> dict:
    """Compile and steady-state time of every member's step as one program."""
    members = hyperparameters.members(seeds, axes)
    shape = INPUT_SHAPES[config.model.name]
    model = make_model(config, 10)
    recipe = make_recipe(config, model, total_steps=1000, steps_per_epoch=100)
    states = init_members(recipe, model, jnp.zeros((1,) + shape), multiseed.seed_keys(members.seeds, 0),
                          members.hyper)
    num_examples = config.batch_size * 4
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (num_examples,) + shape, dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, 10, num_examples, dtype=np.int32))
    orders = epoch_orders(multiseed.seed_keys(members.seeds, 1), 0, num_examples)
    keys = epoch_keys(multiseed.seed_keys(members.seeds, 2), 0)
    chunk = multiseed.seeds_per_vmap(0, multiseed.seed_mesh(len(members)), multiseed.unstack(states.params, 0))
    step = make_multiseed_step(recipe, config.batch_size, chunk)
    timing = time_jitted(step, (states, members.hyper, images, labels, orders, keys, jnp.int32(1)),
                         steps=steps, carry_first=True)
    # New values of the swept keys through the jitted function: a recompile would add a cache entry.
    states = init_members(recipe, model, jnp.zeros((1,) + shape), multiseed.seed_keys(members.seeds, 0),
                          members.hyper)
    for scale in (1.0, 2.0, 0.5):
        states, _ = step(states, {k: v * scale for k, v in members.hyper.items()}, images, labels, orders, keys, 0)
    return {"members": len(members), "seeds_per_vmap": chunk or "all", **timing,
            "seconds_per_member_step": timing["steady_seconds_median"] / len(members),
            "programs_compiled_for_3_value_sets": step._cache_size()}


def process_case(model_name: str, seeds, axes: dict, data_dir: str, train_size: int) -> dict:
    """Wall seconds of one ``gfa_jax.main`` with the axes against one per member."""
    common = [f"--config.data.data_dir={data_dir}", "--config.data.source=idx", f"--config.data.train_size={train_size}",
              "--config.data.test_size=1000", "--config.eval.train_samples=1000", "--config.num_epochs=1",
              "--config.robustness.enabled=False", "--config.checkpoint.max_to_keep=1"]
    config_file = str(REPO / CONFIG_FILES[model_name])

    def run(extra, workdir) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gfa_jax.main", f"--config={config_file}", f"--workdir={workdir}",
                        *common, *extra], check=True, capture_output=True, cwd=REPO)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        together = run([f"--config.seeds={tuple(seeds)}", f"--config.sweep.axes={json.dumps(axes)}"], f"{tmp}/together")
        separate = []
        for i, (seed, setting) in enumerate(((s, st) for st in hyperparameters.settings(axes) for s in seeds)):
            extra = [f"--config.seeds=({seed},)"] + [f"--config.{key}={int(v) if key.endswith('steps') else v}"
                                                     for key, v in setting.items()]
            separate.append(run(extra, f"{tmp}/member{i}"))
    members = len(separate)
    return {"members": members, "train_size": train_size, "epochs": 1, "one_process_seconds": together,
            "separate_processes_seconds": float(np.sum(separate)), "per_process_seconds_median": float(np.median(separate)),
            "speedup": float(np.sum(separate)) / together}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="paper_mlp", choices=sorted(INPUT_SHAPES))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--axes", default='{"gfa.beta_scale": [0.5, 1.0, 2.0], "optimizer.learning_rate": [0.0003, 0.001]}')
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--processes", action="store_true", help="also time whole runs, one process per member")
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--train-size", type=int, default=12800)
    args = parser.parse_args()
    axes = {key: tuple(values) for key, values in json.loads(args.axes).items()}
    seeds = tuple(range(args.seeds))
    config = base(args.model, args.batch)
    result = {"machine": machine_info(), "model": args.model, "batch": args.batch, "axes": axes, "seeds": len(seeds),
              "in_program": step_case(config, seeds, axes, args.steps),
              "one_seed_program": step_case(config, seeds[:1], {}, args.steps)}
    result["per_member_step_speedup"] = (result["one_seed_program"]["steady_seconds_median"]
                                         / result["in_program"]["seconds_per_member_step"])
    if args.processes:
        if args.model != "paper_mlp":
            raise SystemExit("--processes runs the Fashion-MNIST MLP only (its data is on this machine).")
        result["whole_runs"] = process_case(args.model, seeds, axes, args.data_dir, args.train_size)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
