"""DI2-FGSM's per-sample shrink-and-shift: our two-tap gathers against jax.image's dense resampling.

    .venv/bin/python benchmarks/resample.py --out results/benchmarks/resample.json

For each image shape (Fashion-MNIST 28x28x1 and CIFAR-10 32x32x3, batch 256) and each way of
computing it (``gathers``: :func:`gfa_jax.attacks.gradient._resample.shrink_and_shift`;
``dense``: ``jax.image.scale_and_translate`` vmapped over the images, what DI2-FGSM used before),
the forward pass and the gradient (the VJP of a fixed cotangent) are jitted and timed side by side
in alternating rounds (``common.time_interleaved``). The sizes and offsets are DI's draws at
``resize_rate = 0.9``, half of the samples left unchanged. Also printed: the largest difference of
the two ways' outputs and gradients.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from gfa_jax.attacks.gradient._resample import shrink_and_shift  # noqa: E402
from gfa_jax.attacks.gradient.difgsm import _diverse_placement  # noqa: E402

SHAPES = {"fashion_mnist": (256, 28, 28, 1), "cifar10": (256, 32, 32, 3)}


def dense_shrink_and_shift(images, size, offset):
    full = jnp.array(images.shape[1:3], jnp.float32)
    one = lambda image, s, o: jax.image.scale_and_translate(
        image, image.shape, (0, 1), s / full, o, "linear", antialias=False)
    return jax.vmap(one)(images, size, offset)


def measure(shape, repeats: int) -> dict:
    k_x, k_draw, k_cotangent = jax.random.split(jax.random.key(0), 3)
    x = jax.random.uniform(k_x, shape, minval=-1.0, maxval=1.0)
    cotangent = jax.random.normal(k_cotangent, shape)
    place = lambda k: _diverse_placement(k, shape[1:3], 0.9, 0.5)
    size, offset = jax.vmap(place)(jax.random.split(k_draw, shape[0]))
    ways = {"gathers": shrink_and_shift, "dense": dense_shrink_and_shift}
    programs, results = {}, {}
    for name, fn in ways.items():
        forward = jax.jit(fn)
        gradient = jax.jit(lambda v, s, o, fn=fn: jax.vjp(lambda u: fn(u, s, o), v)[1](cotangent)[0])
        for kind, program in (("forward", forward), ("gradient", gradient)):
            compiled, compile_seconds, _ = common.compile_jitted(program, (x, size, offset))
            programs[f"{name}/{kind}"] = common.blocking_calls(compiled, (x, size, offset))
            results[f"{name}/{kind}"] = {"compile_seconds": compile_seconds,
                                         "value": compiled(x, size, offset)}
    timed = common.time_interleaved(programs, min_calls=repeats)
    report = {}
    for key, result in results.items():
        report[key] = {"compile_seconds": result["compile_seconds"], **timed[key]}
    for kind in ("forward", "gradient"):
        difference = jnp.abs(results[f"gathers/{kind}"]["value"] - results[f"dense/{kind}"]["value"]).max()
        report[f"max_abs_difference_{kind}"] = float(difference)
        report[f"dense_over_gathers_{kind}"] = (timed[f"dense/{kind}"]["steady_seconds_median"]
                                               / timed[f"gathers/{kind}"]["steady_seconds_median"])
    report["samples_resized"] = int(jnp.sum(jnp.any(size < jnp.array(shape[1:3]), axis=1)))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="least timed calls per program")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    load_start = list(os.getloadavg())
    report = {"benchmark": "resample", "machine": common.machine_info(),
              "shapes": {name: list(shape) for name, shape in SHAPES.items()}}
    report["cases"] = {name: measure(shape, args.repeats) for name, shape in SHAPES.items()}
    common.emit_report(report, args.out, load_start)


if __name__ == "__main__":
    main()
