"""Compile time of random draws: ``jax.random`` at an image's shape against the same draw made flat.

    .venv/bin/python benchmarks/random_compile.py --out results/benchmarks/random_compile.json

Two ways of drawing the same array (bit for bit, checked here and in ``tests/test_random_draws.py``):
``shaped``, ``jax.random.uniform / normal / rademacher`` called with the multi-dimensional shape, as
the attacks did before; ``flat``, :mod:`gfa_jax.random_draws` (a draw over the flattened shape,
reshaped). For each, a fresh program is compiled ``--repeats`` times, the two ways alternating, and
the compile seconds (``lower().compile()``, tracing excluded) and the number of fused kernels XLA
emitted are recorded (for the draws alone, their run time per call too, timed side by side):

- ``draws``: the draws alone, at the shapes the attacks make on the paper models' batches of 256
  (an image-sized start, Square's first stripes, APGD's and FAB's per-row starts under ``vmap``);
- ``attacks``: whole attacks on the paper CNN (random-start PGD-10, APGD-CE, Square, AutoAttack),
  ``shaped`` being the library with :mod:`gfa_jax.random_draws` swapped for ``jax.random`` while
  tracing, so the two programs differ in their draws only.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.attacks import EPS01, MODEL_INPUT_BOUNDS, NUM_CLASSES, pm1, setup_model  # noqa: E402
from gfa_jax import random_draws  # noqa: E402
from gfa_jax.attacks import get_attack  # noqa: E402

BATCH = 256
KEY = jax.random.key(0)

SHAPED = {
    "uniform": lambda key, shape, dtype=jnp.float32, minval=0.0, maxval=1.0: jax.random.uniform(
        key, shape, dtype, minval, maxval),
    "normal": lambda key, shape, dtype=jnp.float32: jax.random.normal(key, shape, dtype),
    "rademacher": lambda key, shape, dtype=jnp.float32: jax.random.rademacher(key, shape, dtype),
}


@contextlib.contextmanager
def shaped_draws():
    """While tracing inside: :mod:`gfa_jax.random_draws` draws at the given shape, as jax.random does."""
    flat = {name: getattr(random_draws, name) for name in SHAPED}
    try:
        for name, fn in SHAPED.items():
            setattr(random_draws, name, fn)
        yield
    finally:
        for name, fn in flat.items():
            setattr(random_draws, name, fn)


def fused_kernels(compiled) -> int:
    return len(re.findall(r"^\s*(?:ROOT )?\S+ = \S+ fusion\(", compiled.as_text(), re.M))


def compile_once(make_fn, args, shaped: bool) -> tuple[float, int, object]:
    """Traces and lowers a fresh program (a new function object: no trace cache), then times XLA's compile."""
    with shaped_draws() if shaped else contextlib.nullcontext():
        lowered = jax.jit(make_fn()).lower(*args)
    start = time.perf_counter()
    compiled = lowered.compile()
    return time.perf_counter() - start, fused_kernels(compiled), compiled


def draw_cases() -> dict:
    keys = jax.random.split(KEY, BATCH)
    image = (BATCH, 32, 32, 3)
    return {
        "uniform [256, 32, 32, 3] (PGD / APGD start)": (
            lambda: lambda k: random_draws.uniform(k, image, jnp.float32, -1.0, 1.0), (KEY,)),
        "normal [256, 32, 32, 3] (L2 start)": (lambda: lambda k: random_draws.normal(k, image), (KEY,)),
        "uniform [256, 28, 28, 1] (Fashion-MNIST start)": (
            lambda: lambda k: random_draws.uniform(k, (BATCH, 28, 28, 1), jnp.float32, -1.0, 1.0), (KEY,)),
        "rademacher [256, 1, 32, 3] (Square's stripes)": (
            lambda: lambda k: random_draws.rademacher(k, (BATCH, 1, 32, 3)), (KEY,)),
        "vmap uniform [32, 32, 3] over 256 keys (APGD / FAB per-row start)": (
            lambda: jax.vmap(lambda k: random_draws.uniform(k, image[1:], jnp.float32, -1.0, 1.0)), (keys,)),
    }


def attack_cases() -> dict:
    apply, params, x, y = setup_model("cnn", BATCH)
    eps = pm1(EPS01)
    settings = {
        "pgd (10 steps, random start)": ("pgd", {"eps": eps, "alpha": eps / 4, "steps": 10, "random_start": True}),
        "apgd (CE, 10 iterations)": ("apgd", {"eps": eps, "n_iter": 10}),
        "square (100 queries)": ("square", {"eps": eps, "n_queries": 100}),
        "autoattack (10 iterations, 100 queries)": (
            "autoattack", {"eps": eps, "n_iter": 10, "n_target_classes": NUM_CLASSES - 1, "n_queries": 100}),
    }
    cases = {}
    for label, (name, kwargs) in settings.items():
        fn = get_attack(name).fn

        def make(fn=fn, kwargs=kwargs):
            return lambda p, v, labels, k: fn(lambda u: apply(p, u), v, labels, k, bounds=MODEL_INPUT_BOUNDS,
                                              **kwargs)

        cases[label] = (make, (params, x, y, KEY))
    return cases


def measure(cases: dict, repeats: int, timed_calls: int = 0) -> dict:
    """Compile seconds of each way, and with ``timed_calls`` its steady seconds per call too (timed
    side by side, :func:`common.time_interleaved`)."""
    report = {}
    for label, (make_fn, args) in cases.items():
        seconds = {"shaped": [], "flat": []}
        kernels, outputs, executables = {}, {}, {}
        for _ in range(repeats):
            for way in ("shaped", "flat"):
                elapsed, kernels[way], executables[way] = compile_once(make_fn, args, way == "shaped")
                seconds[way].append(elapsed)
                outputs[way] = executables[way](*args)
        same = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(
            jax.tree_util.tree_leaves(outputs["shaped"]), jax.tree_util.tree_leaves(outputs["flat"])))
        row = {way: {"compile_seconds_median": float(np.median(s)), "compile_seconds_min": float(np.min(s)),
                     "compile_seconds": s, "fused_kernels": kernels[way]} for way, s in seconds.items()}
        row["shaped_over_flat"] = row["shaped"]["compile_seconds_median"] / row["flat"]["compile_seconds_median"]
        if timed_calls:
            steady = common.time_interleaved(
                {way: common.blocking_calls(executable, args) for way, executable in executables.items()},
                min_calls=timed_calls)
            for way in executables:
                row[way].update(steady[way])
            row["steady_shaped_over_flat"] = (steady["shaped"]["steady_seconds_median"]
                                              / steady["flat"]["steady_seconds_median"])
        row["same_output"] = bool(same)
        report[label] = row
        print(f"{label}: shaped {row['shaped']['compile_seconds_median']:.2f} s, flat "
              f"{row['flat']['compile_seconds_median']:.2f} s, same output {same}", file=sys.stderr, flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="compiles per way and case")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    load_start = list(os.getloadavg())
    report = {"benchmark": "random_compile", "machine": common.machine_info(), "batch": BATCH,
              "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
              "prng_impl": str(jax.config.jax_default_prng_impl)}
    report["draws"] = measure(draw_cases(), max(args.repeats, 5), timed_calls=20)
    report["attacks"] = measure(attack_cases(), args.repeats)
    common.emit_report(report, args.out, load_start)


if __name__ == "__main__":
    main()
