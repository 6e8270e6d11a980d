"""Where XLA:CPU spends a paper-CNN gradient: page faults per call and the slowest ops; prints JSON.

    .venv/bin/python benchmarks/cpu_profile.py --out results/benchmarks/cpu_profile.json

Two programs at batch 256: ``fgsm_gradient`` (the input gradient of the CE loss: one FGSM step,
one iteration of every gradient attack) and ``deep_step`` (the DEEP GFA train step, one seed).
Each runs in a child process per variant, because the allocator setting must precede JAX's
threads:

- ``before``: malloc as the system sets it (``GFA_JAX_KEEP_FREED_MEMORY=0``), plain convolutions
  (``PaperCNN(cpu_conv_rewrites=False)``);
- ``allocator``: ``gfa_jax.allocator`` on, plain convolutions;
- ``after``: allocator on, ``gfa_jax.models.layers.conv_general_dilated`` (the default).

Per variant: steady seconds per call (median), minor page faults per call (``getrusage``: the
kernel zero-filling fresh pages), and the ``--top`` slowest XLA ops of one traced call
(``jax.profiler`` with a Perfetto trace: one event per thunk; ``ynn_fusion`` = XNNPACK/YNNPACK
dots and convolutions, ``*transpose*`` = layout copies, ``concatenate`` = im2col patches).
Max pooling is the library's own in every variant (its cause and fix are in ``cpu_profile.md``).
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

VARIANTS = {"before": ("0", False), "allocator": ("1", False), "after": ("1", True)}
PROGRAMS = ("fgsm_gradient", "deep_step")


def build(program: str, rewrites: bool, batch: int):
    """``(compiled, args, carry)``: the program and arguments; ``carry`` feeds outputs back (a step)."""
    import jax
    import jax.numpy as jnp

    from benchmarks import train_step as train_step_benchmark
    from gfa_jax.models import PaperCNN

    if program == "fgsm_gradient":
        model = PaperCNN(cpu_conv_rewrites=rewrites)
        x = jax.random.uniform(jax.random.key(1), (batch, 32, 32, 3), minval=-1, maxval=1)
        params = jax.jit(model.init)(jax.random.key(0), x[:1])["params"]
        labels = jnp.argmax(model.apply({"params": params}, x), -1)

        def loss(v, p):
            logits = model.apply({"params": p}, v)
            return -jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], -1))

        fn, args = jax.jit(jax.grad(loss)), (x, params)
        return fn.lower(*args).compile(), args, False
    _, step, args = train_step_benchmark.build_step("paper_cnn", "deep", 1, batch, plain_conv=not rewrites)
    return step.lower(*args).compile(), args, True


def top_ops(trace_dir: str, calls: int, top: int) -> list[dict]:
    path = sorted(glob.glob(os.path.join(trace_dir, "**", "*.json.gz"), recursive=True))[-1]
    events = json.load(gzip.open(path))
    events = events["traceEvents"] if isinstance(events, dict) else events
    total, count = collections.Counter(), collections.Counter()
    for event in events:
        name = event.get("name", "")
        # Thunk events only: not the executor's or dispatch's own spans, not Python frames ("$file:line").
        if event.get("ph") == "X" and not name.startswith(("$", "ThunkExecutor", "PjRt", "Pjit")):
            total[name] += event.get("dur", 0)
            count[name] += 1
    return [{"op": name, "ms_per_call": micros / calls / 1e3, "count_per_call": count[name] // calls}
            for name, micros in total.most_common(top)]


def child(args) -> None:
    import jax

    from benchmarks.common import blocking_calls

    compiled, call_args, carry = build(args.program, args.rewrites, args.batch)
    call = blocking_calls(compiled, call_args, carry_first=carry)

    for _ in range(2):
        call()
    times, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(args.repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.repeats
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
        call()
        jax.profiler.stop_trace()
        ops = top_ops(trace_dir, 1, args.top)
    from gfa_jax import allocator

    times.sort()
    print(json.dumps({"steady_seconds_median": times[len(times) // 2], "steady_seconds_min": times[0],
                      "minor_page_faults_per_call": faults, "malloc_keeps_freed_memory": allocator.is_applied(),
                      "top_ops_traced_call": ops}))


def micro_timings(batch: int, repeats: int) -> dict:
    """Two single ops, old formulation vs ours, in this process (allocator on): the gradient of ReLU +
    2x2 max pooling on conv1's output, and conv1's forward with 3 vs 4 (zero-padded) input channels."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks.common import time_jitted
    from gfa_jax.models import layers

    def reduce_pool(x):  # the library's formulation before (reshape + max over two axes)
        b, h, w, c = x.shape
        return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))

    def pairwise_maximum_pool(x):  # session 6's: jnp.maximum, whose derivative splits ties (a divide)
        b, h, w, c = x.shape
        windows = x.reshape(b, h // 2, 2, w // 2, 2 * c)
        rows = jnp.maximum(windows[:, :, 0], windows[:, :, 1])
        return jnp.maximum(rows[..., :c], rows[..., c:])

    def pool_gradient(pool):
        return lambda h, g: jax.vjp(lambda v: pool(jax.nn.relu(v)), h)[1](g)[0]

    key = jax.random.key(0)
    h = jax.random.normal(key, (batch, 32, 32, 32))
    g = jax.random.normal(key, (batch, 16, 16, 32))
    x = jax.random.normal(key, (batch, 32, 32, 3))
    kernel = jax.random.normal(key, (3, 3, 3, 32))
    numbers = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, ("NHWC", "HWIO", "NHWC"))
    plain_conv = lambda v, k: jax.lax.conv_general_dilated(v, k, (1, 1), "SAME", dimension_numbers=numbers)
    ours_conv = lambda v, k: layers.conv_general_dilated(v, k, (1, 1), "SAME", dimension_numbers=numbers)
    cases = {
        "relu_maxpool_gradient_reshape_max": (pool_gradient(reduce_pool), (h, g)),
        "relu_maxpool_gradient_pairwise_maximum": (pool_gradient(pairwise_maximum_pool), (h, g)),
        "relu_maxpool_gradient_ours": (pool_gradient(layers.max_pool_2x2), (h, g)),
        "conv1_forward_3_channels": (plain_conv, (x, kernel)),
        "conv1_forward_padded_to_4": (ours_conv, (x, kernel)),
    }
    out = {}
    for name, (fn, fn_args) in cases.items():
        timing = time_jitted(jax.jit(fn), fn_args, steps=repeats)
        out[name] = {"steady_seconds_median": timing["steady_seconds_median"]}
    same = lambda a, b: float(np.abs(np.asarray(jax.jit(cases[a][0])(*cases[a][1])) -
                                     np.asarray(jax.jit(cases[b][0])(*cases[b][1]))).max())
    out["max_abs_diff_pool_gradients"] = same("relu_maxpool_gradient_reshape_max", "relu_maxpool_gradient_ours")
    out["max_abs_diff_conv1"] = same("conv1_forward_3_channels", "conv1_forward_padded_to_4")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--programs", default=",".join(PROGRAMS))
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--program", default="fgsm_gradient", help=argparse.SUPPRESS)
    parser.add_argument("--rewrites", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from benchmarks.common import emit_report, machine_info

    load_start = list(os.getloadavg())
    report = {"benchmark": "cpu_profile", "machine": machine_info(), "batch": args.batch, "programs": {}}
    for program in args.programs.split(","):
        report["programs"][program] = {}
        for variant, (allocator_on, rewrites) in VARIANTS.items():
            command = [sys.executable, __file__, "--child", "--program", program, "--batch", str(args.batch),
                       "--repeats", str(args.repeats), "--top", str(args.top)] + (["--rewrites"] if rewrites else [])
            env = {**os.environ, "GFA_JAX_KEEP_FREED_MEMORY": allocator_on,
                   "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1])}
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            report["programs"][program][variant] = row
            print(f"[cpu_profile] {program} {variant}: {row['steady_seconds_median']:.3f} s, "
                  f"{row['minor_page_faults_per_call']:.0f} page faults per call", file=sys.stderr, flush=True)
    report["micro"] = micro_timings(args.batch, args.repeats)
    emit_report(report, args.out, load_start)


if __name__ == "__main__":
    main()
