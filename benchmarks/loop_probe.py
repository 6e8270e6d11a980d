"""Why a rolled attack loop was slower than unrolled on XLA:CPU: PGD-10 on the paper CNN, side by side.

    .venv/bin/python benchmarks/loop_probe.py --batch 256 --repeats 5 --out results/benchmarks/loop_probe.json

Variants (same attack, same key, same inputs), timed interleaved (round-robin, median of
``--repeats``) so that load changes hit them alike:

- ``rolled_raw``: ``lax.fori_loop`` with the body as JAX traces it (the library before the fix);
- ``rolled``: the library default, a rolled loop through :func:`gfa_jax.attacks.loops.fori_loop`
  (convolutions rewritten to NHWC/HWIO);
- ``unrolled``: all 10 steps unrolled (``unroll=True``, what the library did on CPU before);
- ``rolled_unroll2``: ``unroll=2`` through the same loop helper.

For each: compile seconds, steady seconds, max |x_adv - x_adv(unrolled)|, and from the optimised
HLO the convolutions' ``dim_labels`` (``b01f_01io->b01f`` is the only layout XLA:CPU's Eigen
convolution runs; anything else is emitted as a naive loop nest).
"""
from __future__ import annotations

import argparse
import collections
import os
import pathlib
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks.common import emit_report, machine_info  # noqa: E402
from gfa_jax.attacks import get_attack, loops  # noqa: E402
from gfa_jax.data import MODEL_INPUT_BOUNDS  # noqa: E402
from gfa_jax.models import PaperCNN  # noqa: E402

VARIANTS = {"rolled_raw": (1, False), "rolled": (1, True), "unrolled": (True, True), "rolled_unroll2": (2, True)}


def make_variant(apply, unroll, canonical: bool, steps: int):
    pgd = get_attack("pgd").fn

    def run(params, x, y, key):
        original = loops.canonical_convolutions
        if not canonical:  # trace with the rewrite switched off (restored right after tracing)
            loops.canonical_convolutions = lambda fn: fn
        try:
            return pgd(lambda v: apply(params, v), x, y, key, bounds=MODEL_INPUT_BOUNDS, steps=steps, unroll=unroll)
        finally:
            loops.canonical_convolutions = original

    return jax.jit(run)


def conv_layouts(hlo_text: str) -> dict[str, int]:
    return dict(collections.Counter(re.findall(r"convolution\(.*?dim_labels=([^,\s]+)", hlo_text)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    load_start = list(os.getloadavg())
    model = PaperCNN()
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    x = jax.random.uniform(jax.random.key(1), (args.batch, 32, 32, 3), minval=-1.0, maxval=1.0)
    apply = lambda p, v: model.apply({"params": p}, v)  # noqa: E731
    y = jnp.argmax(apply(params, x), -1)
    key = jax.random.key(2)
    compiled, results = {}, {}
    for name, (unroll, canonical) in VARIANTS.items():
        start = time.perf_counter()
        compiled[name] = make_variant(apply, unroll, canonical, args.steps).lower(params, x, y, key).compile()
        results[name] = {"unroll": unroll, "canonical_convolutions": canonical,
                         "compile_seconds": time.perf_counter() - start,
                         "conv_dim_labels": conv_layouts(compiled[name].as_text())}
    outs = {name: fn(params, x, y, key).block_until_ready() for name, fn in compiled.items()}
    times = {name: [] for name in compiled}
    for _ in range(args.repeats):
        for name, fn in compiled.items():
            start = time.perf_counter()
            fn(params, x, y, key).block_until_ready()
            times[name].append(time.perf_counter() - start)
    base = float(np.median(times["unrolled"]))
    for name in compiled:
        median = float(np.median(times[name]))
        results[name].update(steady_seconds_median=median, steady_seconds_all=times[name],
                             over_unrolled=median / base,
                             max_abs_diff_vs_unrolled=float(jnp.abs(outs[name] - outs["unrolled"]).max()))
        print(f"[loop_probe] {name}: {median:.3f} s ({median / base:.2f}x unrolled), compile "
              f"{results[name]['compile_seconds']:.1f} s, convs {results[name]['conv_dim_labels']}",
              file=sys.stderr, flush=True)
    report = {"benchmark": "loop_probe", "machine": machine_info(), "attack": f"pgd-{args.steps}",
              "model": "paper_cnn", "batch": args.batch, "repeats": args.repeats, "variants": results}
    emit_report(report, args.out, load_start)


if __name__ == "__main__":
    main()
