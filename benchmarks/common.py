"""Shared measuring tools for the benchmarks: machine facts, matmul peak, compile/steady timing."""
from __future__ import annotations

import json
import math
import os
import pathlib
import platform
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from gfa_jax import allocator, files


def machine_info() -> dict:
    device = jax.devices()[0]
    return {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "jax_version": jax.__version__,
        # gfa_jax.allocator (applied by importing gfa_jax): torch, timed in the same process, shares it.
        "malloc_keeps_freed_memory": allocator.is_applied(),
    }


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matmul throughput (FLOP/s) of the default device: the efficiency yardstick."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    matmul = jax.jit(lambda m: m @ m)
    matmul(a).block_until_ready()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def compiled_flops(compiled) -> float | None:
    """XLA's own FLOP count of a compiled program (None where the backend gives none)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    return float(analysis["flops"]) if analysis and "flops" in analysis else None


# Untimed calls before the timed ones: the first call's buffers, and the second's, grow the heap that
# later calls reuse (gfa_jax.allocator keeps freed memory); torch's calls are warmed up alike.
WARMUP_CALLS = 2


def blocking_calls(compiled, args, *, carry_first: bool = False):
    """A no-argument callable: one call of ``compiled`` on the current arguments, until its outputs
    are ready. With ``carry_first`` the first output replaces the first argument each call (a train
    step's state), so donated buffers are never reused."""
    current = args

    def call():
        nonlocal current
        out = compiled(*current)
        if carry_first:
            current = (out[0],) + tuple(current[1:])
        jax.block_until_ready(out)

    return call


def compile_jitted(fn, args) -> tuple[Any, float, float | None]:
    """``jax.jit``-ed ``fn`` lowered and compiled for ``args``: (executable, seconds, XLA's FLOPs)."""
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start, compiled_flops(compiled)


# Interleaved timing (:func:`time_interleaved`): rounds per side, and the least time each side is
# timed for, so a 5 ms call is timed ~200 times, not 5 (this VM's speed drifts ±30 % over seconds).
ROUNDS = 3
MIN_TIMED_SECONDS = 1.0
MIN_WARMUP_SECONDS = 0.2


def time_interleaved(calls: dict[str, Callable[[], Any]], *, min_calls: int, rounds: int = ROUNDS,
                     min_seconds: float = MIN_TIMED_SECONDS, warmup: int = WARMUP_CALLS) -> dict[str, dict]:
    """Steady seconds per call of each blocking no-argument callable in ``calls``, timed side by side:
    ``rounds`` rounds in which each side in turn makes its calls, so that a drift of the machine's
    speed reaches every side alike. Each side gets at least ``min_calls`` timed calls and
    ``min_seconds`` of timed calls, after ``warmup`` calls (and at least ``MIN_WARMUP_SECONDS``)."""
    per_call = {}
    for name, call in calls.items():
        start = time.perf_counter()
        done = 0
        while done < warmup or time.perf_counter() - start < MIN_WARMUP_SECONDS:
            call()
            done += 1
        per_call[name] = (time.perf_counter() - start) / done
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            n = max(-(-min_calls // rounds), math.ceil(min_seconds / rounds / max(per_call[name], 1e-9)))
            for _ in range(n):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    return {name: {"steady_seconds_median": float(np.median(t)), "steady_seconds_min": float(np.min(t)),
                   "steps_timed": len(t), "interleaved_rounds": rounds} for name, t in times.items()}


def time_jitted(fn, args, *, steps: int, carry_first: bool = False, warmup: int = WARMUP_CALLS) -> dict:
    """Compile time and steady-state seconds per call of ``jax.jit``-ed ``fn``, timed over ``steps``
    calls after ``warmup`` calls (``carry_first``: see :func:`blocking_calls`)."""
    compiled, compile_seconds, flops = compile_jitted(fn, args)
    call = blocking_calls(compiled, args, carry_first=carry_first)
    for _ in range(warmup):
        call()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {
        "compile_seconds": compile_seconds,
        "steady_seconds_median": float(np.median(times)),
        "steady_seconds_min": float(np.min(times)),
        "steps_timed": steps,
        "xla_flops": flops,
    }


def emit_report(report: dict, out: str | None, load_start: list[float]) -> None:
    """Record the load average over the run, print the JSON report, and write it to ``out`` if given."""
    report["load_average"] = {"start": load_start, "end": list(os.getloadavg())}
    text = json.dumps(report, indent=2)
    if out:
        files.write_text_atomic(pathlib.Path(out), text + "\n")  # a killed run leaves the old file whole
    print(text)
