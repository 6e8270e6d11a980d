"""DEEP GFA step on the paper CNN: convolution implementations side by side; prints JSON.

    .venv/bin/python benchmarks/gfa_step_probe.py --batch 256 --repeats 5 --out results/benchmarks/gfa_step_probe.json

Variants of the parameter gradient of ``gfa.gfa_loss`` (DEEP: GFA on conv1, conv2, fc1, beta 0.1),
timed interleaved in one process (median of ``--repeats``):

- ``xla_conv``: the model as it is (``lax.conv_general_dilated``; XLA canonicalises the double
  backward's convolutions: weight gradients become convolutions with 16x16 / 32x32 windows);
- ``patch_conv``: every 3x3 SAME convolution as im2col (shifted slices concatenated) + one matmul,
  so every derivative (double backward included) is a matmul or a slice / pad.
"""
from __future__ import annotations

import argparse
import functools
import os
import pathlib
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks.common import compiled_flops, emit_report, machine_info, matmul_peak_flops  # noqa: E402
from gfa_jax import gfa  # noqa: E402
from gfa_jax.models import cnn  # noqa: E402


def patch_conv(lhs, rhs, window_strides, padding, **_):
    """Stride-1 NHWC x HWIO convolution as im2col + matmul (same values as XLA's)."""
    assert tuple(window_strides) == (1, 1)
    kh, kw, cin, cout = rhs.shape
    _, height, width, _ = lhs.shape
    if isinstance(padding, str):
        padding = jax.lax.padtype_to_pads((height, width), (kh, kw), (1, 1), padding)
    padded = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    patches = jnp.concatenate([padded[:, i:i + height, j:j + width, :] for i in range(kh) for j in range(kw)],
                              axis=-1)
    return patches @ rhs.reshape(kh * kw * cin, cout)


class _PatchNN:
    """``flax.linen`` with ``Conv`` bound to :func:`patch_conv` (for this probe only)."""

    def __getattr__(self, name):
        if name == "Conv":
            return functools.partial(nn.Conv, conv_general_dilated=patch_conv)
        return getattr(nn, name)


def deep_grad_fn(model, beta):
    names = model.layer_names

    def grad(params, x, labels):
        return jax.grad(lambda p: gfa.gfa_loss(p, x, labels, model=model, layer_names=names, beta=beta)[0])(params)

    return jax.jit(grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    load_start = list(os.getloadavg())
    beta = (0.1, 0.1, 0.1, 0.0, 0.0)
    x = jax.random.uniform(jax.random.key(0), (args.batch, 32, 32, 3), minval=-1.0, maxval=1.0)
    labels = jax.random.randint(jax.random.key(1), (args.batch,), 0, 10)
    model = cnn.PaperCNN()
    params = model.init(jax.random.key(2), x[:1])["params"]
    variants = {"xla_conv": deep_grad_fn(model, beta)}
    original_nn = cnn.nn
    cnn.nn = _PatchNN()
    try:  # trace the patch variant while the module sees the patched flax namespace
        patched = deep_grad_fn(cnn.PaperCNN(), beta)
        compiled = {"patch_conv": patched.lower(params, x, labels).compile()}
    finally:
        cnn.nn = original_nn
    results = {}
    start = time.perf_counter()
    compiled["xla_conv"] = variants["xla_conv"].lower(params, x, labels).compile()
    results["xla_conv"] = {"compile_seconds": time.perf_counter() - start}
    results["patch_conv"] = {}
    outs = {k: f(params, x, labels) for k, f in compiled.items()}
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(outs["xla_conv"]),
                                                               jax.tree_util.tree_leaves(outs["patch_conv"])))
    times = {k: [] for k in compiled}
    for _ in range(args.repeats):
        for k, f in compiled.items():
            t = time.perf_counter()
            jax.block_until_ready(f(params, x, labels))
            times[k].append(time.perf_counter() - t)
    peak = matmul_peak_flops()
    flops = compiled_flops(compiled["xla_conv"])  # the same math: one FLOP count for both
    for k in compiled:
        median = float(np.median(times[k]))
        results[k].update(steady_seconds_median=median, steady_seconds_all=times[k],
                          xla_flops_own=compiled_flops(compiled[k]),
                          efficiency_vs_matmul_peak=flops / median / peak if flops else None)
        print(f"[gfa_step_probe] {k}: {median:.3f} s, {100 * results[k]['efficiency_vs_matmul_peak']:.1f} % of peak",
              file=sys.stderr, flush=True)
    report = {"benchmark": "gfa_step_probe", "machine": machine_info(), "batch": args.batch, "beta": beta,
              "matmul_peak_flops": peak, "max_abs_grad_diff": diff, "variants": results}
    emit_report(report, args.out, load_start)


if __name__ == "__main__":
    main()
