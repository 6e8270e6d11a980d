"""Time per train step: standard vs DEEP GFA (and the baselines), one seed vs several vmapped; prints JSON.

    .venv/bin/python benchmarks/train_step.py --model paper_cnn --batch 256 --seeds 5 [--torch [--interleave 20]] [--conv-as-matmul]
    .venv/bin/python benchmarks/train_step.py --strategies standard,deep,adv,gaie,denoise
    .venv/bin/python benchmarks/train_step.py --model paper_mlp --layerwise
    .venv/bin/python benchmarks/train_step.py --model mnist_3conv2fc --task-loss ce --strategies layerwise,adv

Strategies: standard, first, deep (GFA); adv (PGD adversarial training with the config defaults),
gaie (the GAIE regulariser), denoise (the CNN with denoising blocks, standard loss; CNN only),
layerwise (``--layerwise``: layer-wise adversarial training on every Dense / Conv output, eps from
N(0, 0.1), the default input-FGSM form). Each is timed against standard with the same task loss
(``--task-loss``): ``<strategy>_over_standard_1_seed`` in the ratios.

Compile time and steady-state time are reported separately. Efficiency is XLA's own FLOP count of
the one-seed step as written (``PaperCNN(cpu_conv_rewrites=False)``: plain convolutions, so that
rewrites which trade convolutions for matmuls don't change the yardstick) over each case's steady
time, against the measured float32 matmul peak of the device; torch's efficiency uses the same count.
With ``--torch`` (needs ``pip install torch``) the same model and DEEP loss, written in PyTorch with
a double backward (``create_graph=True``), is timed side by side at one seed; ``--interleave N``
also alternates the two DEEP steps call by call, N rounds (the ratio to quote on a shared machine).
"""
from __future__ import annotations

import argparse
import functools
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks.common import (WARMUP_CALLS, blocking_calls, compiled_flops, emit_report, machine_info,  # noqa: E402
                               matmul_peak_flops, time_jitted)
from gfa_jax import config as gfa_config  # noqa: E402
from gfa_jax.training import multiseed, optimizers, train_state, train_step  # noqa: E402
from gfa_jax.defenses.compose import make_objective  # noqa: E402

INPUT_SHAPES = {"paper_cnn": (32, 32, 3), "paper_mlp": (28, 28, 1), "mnist_4fc": (28, 28, 1),
                "mnist_3conv2fc": (28, 28, 1)}
STRATEGIES = gfa_config.STRATEGIES + ("adv", "gaie", "denoise", "layerwise")


def strategy_config(model_name: str, strategy: str, task_loss: str = "mse"):
    """The base config with ``strategy`` switched on for ``model_name``: GFA weights 0.1, GAIE 0.1."""
    config = gfa_config.base_config()
    config.model.name = model_name
    config.task_loss = task_loss
    config.gfa.beta = gfa_config.strategy_beta(strategy if strategy in gfa_config.STRATEGIES else "standard",
                                               model_name, 0.1)
    if strategy == "adv":
        config.adversarial.enabled = True
    elif strategy == "gaie":
        config.gaie.weight = 0.1
    elif strategy == "denoise":
        if model_name != "paper_cnn":
            raise ValueError("The denoise strategy needs --model paper_cnn (it swaps in paper_cnn_denoise).")
        config.model.name = "paper_cnn_denoise"
    elif strategy == "layerwise":  # every Dense / Conv output perturbed (gfa_jax.defenses.layerwise)
        config.layerwise.enabled = True
    return config


def build_step(model_name: str, strategy: str, num_seeds: int, batch: int, seed_chunk: int | None = None,
               task_loss: str = "mse", conv_as_matmul: bool = False, plain_conv: bool = False):
    """The multi-seed train step of ``strategy`` and its arguments (random uint8 images, labels)."""
    config = strategy_config(model_name, strategy, task_loss)
    config.batch_size = batch  # the layer-wise carry holds one gradient per sample of a batch
    model = train_state.make_model(config, num_classes=10)
    if conv_as_matmul:  # PaperCNN's opt-in im2col + matmul convolutions
        model = model.clone(conv_as_matmul=True)
    if plain_conv:  # PaperCNN with lax.conv_general_dilated as written (no XLA:CPU rewrites)
        model = model.clone(cpu_conv_rewrites=False)
    tx = optimizers.make_optimizer(config, total_steps=1000)
    num_examples = batch * 4
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (num_examples,) + INPUT_SHAPES[model_name], dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, 10, num_examples, dtype=np.int32))
    seeds = tuple(range(num_seeds))
    sample_x = jnp.zeros((1,) + INPUT_SHAPES[model_name])
    objective = make_objective(config, model)
    states = jax.vmap(lambda k: train_state.create_train_state(k, model, tx, sample_x, objective))(multiseed.seed_keys(seeds, 0))
    orders = train_step.epoch_orders(multiseed.seed_keys(seeds, 1), 0, num_examples)
    keys = train_step.epoch_keys(multiseed.seed_keys(seeds, 2), 0)
    step = train_step.make_multiseed_step(train_step.fixed_recipe(objective, tx), batch, seed_chunk)
    return config, step, (states, {}, images, labels, orders, keys, jnp.int32(1))


def plain_conv_flops(model_name: str, strategy: str, batch: int, task_loss: str) -> float | None:
    """XLA's FLOP count of the paper CNN's one-seed step as written (plain convolutions): the
    yardstick of every efficiency, so that rewrites that move work between convolutions and matmuls
    don't move it."""
    _, step, args = build_step(model_name, strategy, 1, batch, task_loss=task_loss, plain_conv=True)
    return compiled_flops(step.lower(*args).compile())


def jax_case(model_name: str, strategy: str, num_seeds: int, batch: int, steps: int,
             seed_chunk: int | None = None, task_loss: str = "mse", conv_as_matmul: bool = False) -> dict:
    config, step, args = build_step(model_name, strategy, num_seeds, batch, seed_chunk, task_loss, conv_as_matmul)
    result = time_jitted(step, args, steps=steps, carry_first=True)
    mode = "vmap" if seed_chunk is None else f"{seed_chunk} per vmap"
    return {"impl": "jax", "model": config.model.name, "strategy": strategy, "task_loss": task_loss, "seeds": num_seeds,
            "seed_mode": mode, "batch": batch, "conv_as_matmul": conv_as_matmul, **result}


def torch_deep_cnn_step(batch: int, beta: float = 0.1):
    """One DEEP train step of the paper CNN in PyTorch (double backward), as a callable."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class PaperCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
            self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
            self.fc1 = nn.Linear(2048, 1000, bias=False)
            self.fc2 = nn.Linear(1000, 600, bias=False)
            self.fc3 = nn.Linear(600, 10, bias=False)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            h1 = x
            h2 = self.pool(torch.relu(self.conv1(h1)))
            h3 = self.pool(torch.relu(self.conv2(h2))).flatten(1)
            h4 = torch.relu(self.fc1(h3))
            return self.fc3(torch.relu(self.fc2(h4))), (h1, h2, h3)

    model = PaperCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, 32, 32) * 2 - 1
    y = torch.randint(0, 10, (batch,))
    onehot = nn.functional.one_hot(y, 10).float()

    def step():
        x_in = x.clone().requires_grad_(True)
        logits, features = model(x_in)
        per_sample = ((logits - onehot) ** 2).mean(1)
        grads = torch.autograd.grad(per_sample.sum(), features, create_graph=True)
        gfa = sum(
            nn.functional.cosine_similarity(h.flatten(1), g.flatten(1), dim=1, eps=1e-10).mean()
            for h, g in zip(features, grads)
        )
        loss = per_sample.mean() - beta * gfa
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def torch_deep_cnn_case(batch: int, steps: int) -> dict:
    """The PyTorch DEEP step timed on its own (after the JAX cases)."""
    import torch

    step = torch_deep_cnn_step(batch)
    for _ in range(WARMUP_CALLS):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"impl": "torch", "model": "paper_cnn", "strategy": "deep", "seeds": 1, "batch": batch,
            "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
            "steady_seconds_median": float(np.median(times)), "steady_seconds_min": float(np.min(times)),
            "steps_timed": steps}


def interleaved_deep_vs_torch(batch: int, rounds: int) -> dict:
    """The JAX and the PyTorch DEEP steps (one seed) alternating, ``rounds`` calls each.

    This VM's speed drifts by a third between runs minutes apart (neighbours' load), which moves a
    ratio of two back-to-back timings as much as any change being measured; alternating the two
    steps call by call exposes both to the same drift. Reported: each side's median and the median
    of the per-round ratios.
    """
    _, step, args = build_step("paper_cnn", "deep", 1, batch)
    jax_step = blocking_calls(step.lower(*args).compile(), args, carry_first=True)
    torch_step = torch_deep_cnn_step(batch)
    for _ in range(WARMUP_CALLS):
        jax_step()
        torch_step()
    jax_times, torch_times = [], []
    for _ in range(rounds):
        for call, times in ((jax_step, jax_times), (torch_step, torch_times)):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    per_round = np.asarray(torch_times) / np.asarray(jax_times)
    return {"model": "paper_cnn", "strategy": "deep", "seeds": 1, "batch": batch, "rounds": rounds,
            "jax_seconds_median": float(np.median(jax_times)), "torch_seconds_median": float(np.median(torch_times)),
            "torch_over_jax_median_of_rounds": float(np.median(per_round)),
            "torch_over_jax_rounds_min_max": [float(per_round.min()), float(per_round.max())]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="paper_cnn", choices=sorted(INPUT_SHAPES))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--strategies", default="standard,deep",
                        help=f"comma-separated, from {', '.join(STRATEGIES)}; standard is always timed")
    parser.add_argument("--torch", action="store_true", help="also time the PyTorch DEEP step (CNN only)")
    parser.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                        help="with --torch: also alternate the JAX and PyTorch DEEP steps ROUNDS times each")
    parser.add_argument("--layerwise", action="store_true", help="also time layer-wise adversarial training")
    parser.add_argument("--conv-as-matmul", action="store_true",
                        help="also time the one-seed steps with PaperCNN(conv_as_matmul=True)")
    parser.add_argument("--task-loss", default="mse", choices=("mse", "ce"), help="the loss every strategy trains")
    parser.add_argument("--out", default=None, help="also write the JSON report to this file")
    args = parser.parse_args()
    load_start = list(os.getloadavg())
    strategies = ["standard"] + [s for s in args.strategies.split(",") if s and s != "standard"]
    if args.layerwise and "layerwise" not in strategies:
        strategies.append("layerwise")
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        parser.error(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")

    peak = matmul_peak_flops()
    cases = []
    for strategy in strategies:
        case = functools.partial(jax_case, args.model, strategy, batch=args.batch, steps=args.steps,
                                 task_loss=args.task_loss)
        cases.append(case(1))
        if args.conv_as_matmul:
            cases.append(case(1, conv_as_matmul=True))
        if args.seeds > 1:  # all seeds in one vmap, and one seed at a time (the CPU default)
            cases.append(case(args.seeds))
            cases.append(case(args.seeds, seed_chunk=1))
    interleaved = None
    if args.torch and args.model == "paper_cnn":
        cases.append(torch_deep_cnn_case(args.batch, args.steps))
        if args.interleave:
            interleaved = interleaved_deep_vs_torch(args.batch, args.interleave)

    # The same math in every implementation: XLA's count of the one-seed step is the numerator of
    # every efficiency, torch's included; for the paper CNN, of the step with plain convolutions.
    flops_by_key = {(c["strategy"], 1): c.get("xla_flops") for c in cases
                    if c["impl"] == "jax" and c["seeds"] == 1 and not c["conv_as_matmul"]}
    if args.model == "paper_cnn":
        flops_by_key = {(strategy, 1): plain_conv_flops(args.model, strategy, args.batch, args.task_loss)
                        for strategy in strategies}
    for case in cases:
        flops = flops_by_key.get((case["strategy"], case["seeds"]))
        if flops:
            case["reference_flops"] = flops
            case["efficiency_vs_matmul_peak"] = flops / case["steady_seconds_median"] / peak
    by_key = {(c["impl"], c["strategy"], c["seeds"], c.get("seed_mode", "vmap")): c["steady_seconds_median"]
              for c in cases if not c.get("conv_as_matmul")}
    matmul_conv = {c["strategy"]: c["steady_seconds_median"] for c in cases if c.get("conv_as_matmul")}
    ratios = {}
    for strategy in strategies[1:]:
        ratios[f"{strategy}_over_standard_1_seed"] = by_key[("jax", strategy, 1, "vmap")] / by_key[("jax", "standard", 1, "vmap")]
        ratios[f"{strategy}_flops_over_standard_flops"] = (
            (flops_by_key[(strategy, 1)] or np.nan) / (flops_by_key[("standard", 1)] or np.nan))
    if "deep" in strategies and args.seeds > 1:
        one = by_key[("jax", "deep", 1, "vmap")]
        ratios[f"{args.seeds}_seeds_vmapped_over_1_seed_deep"] = by_key[("jax", "deep", args.seeds, "vmap")] / one
        ratios[f"{args.seeds}_seeds_mapped_over_1_seed_deep"] = by_key[("jax", "deep", args.seeds, "1 per vmap")] / one
    if ("torch", "deep", 1, "vmap") in by_key and "deep" in strategies:
        ratios["torch_over_jax_deep_1_seed"] = by_key[("torch", "deep", 1, "vmap")] / by_key[("jax", "deep", 1, "vmap")]
        if "deep" in matmul_conv:
            ratios["torch_over_jax_deep_1_seed_conv_as_matmul"] = by_key[("torch", "deep", 1, "vmap")] / matmul_conv["deep"]
    if interleaved:
        ratios["torch_over_jax_deep_1_seed_interleaved"] = interleaved["torch_over_jax_median_of_rounds"]
        flops = flops_by_key.get(("deep", 1))
        if flops:
            for impl in ("jax", "torch"):
                interleaved[f"{impl}_efficiency_vs_matmul_peak"] = flops / interleaved[f"{impl}_seconds_median"] / peak
    for strategy, seconds in matmul_conv.items():
        ratios[f"{strategy}_conv_as_matmul_over_xla_conv_1_seed"] = seconds / by_key[("jax", strategy, 1, "vmap")]
    for case in cases:
        eff = case.get("efficiency_vs_matmul_peak")
        print(f"[train_step] {case['impl']} {case['strategy']} seeds={case['seeds']} "
              f"{'conv_as_matmul ' if case.get('conv_as_matmul') else ''}{case['steady_seconds_median']:.3f} s"
              + (f", {100 * eff:.1f} % of peak" if eff else ""), file=sys.stderr)
    if interleaved:
        print(f"[train_step] interleaved DEEP, {interleaved['rounds']} rounds: jax {interleaved['jax_seconds_median']:.3f} s, "
              f"torch {interleaved['torch_seconds_median']:.3f} s, torch / jax {interleaved['torch_over_jax_median_of_rounds']:.2f}",
              file=sys.stderr)
    emit_report({"benchmark": "train_step", "machine": machine_info(), "matmul_peak_flops": peak,
                 "cases": cases, "ratios": ratios, **({"interleaved_deep_vs_torch": interleaved} if interleaved else {})},
                args.out, load_start)


if __name__ == "__main__":
    main()
