"""Write results/benchmarks/README.md from the benchmark JSON files (generated, never typed).

    .venv/bin/python benchmarks/summarize.py            # reads and writes results/benchmarks/

Tables: issue 15's before / after runs (``attacks_v3_before.json`` vs the newest of
``attacks_v10.json`` / ``attacks_v9.json`` / ``attacks_v8.json`` / ``attacks_v7.json`` / ``attacks_v6.json`` / ``attacks_v5.json``, the whole-budget runs
``attacks_v3_small_eps.json`` vs ``attacks_v7_small_eps.json`` / ``attacks_v5_small_eps.json``,
``train_step_cnn_v4_before.json`` vs ``train_step_cnn_v4.json``, its re-runs ``train_step_cnn_v5.json`` and ``train_step_cnn_v6.json``, and v3) with
its targets marked met or not; AutoAttack against torchattacks (``autoattack_v9.json`` back to ``autoattack_v4*.json``);
DI2-FGSM's resampling, two ways (``resample.json``); random draws' compile time, shaped vs flat
(``random_compile.json``);
attacks before (``attacks_<model>.json``, ``attacks_cnn_unrolled.json``) and after
(``attacks_<model>_v2.json``) per model: JAX seconds, compile seconds, torchattacks seconds, the
torch / JAX ratio (> 1: ours faster), efficiency against the measured matmul peak (``<=`` where the
attack stops early and the bound assumes the whole budget ran), robust accuracy both sides; the
loop probe (``loop_probe.json``); the train step (``train_step_cnn*.json``). Each table names its
file, the machine, and the load average recorded during the run where the file has one.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from gfa_jax import files  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parents[1] / "results" / "benchmarks"


def fmt(value, digits: int = 3, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def load(path: pathlib.Path):
    return json.loads(path.read_text()) if path.exists() else None


def run_facts(report: dict, name: str) -> str:
    machine = report.get("machine", {})
    facts = [f"`{name}`", f"{machine.get('cpu_count')} CPUs", f"jax {machine.get('jax_version')}"]
    if "torch" in report:
        facts.append(f"torch {report['torch']['torch_version']}, torchattacks {report['torch']['torchattacks_version']}")
    if report.get("matmul_peak_flops"):
        facts.append(f"matmul peak {report['matmul_peak_flops'] / 1e9:.0f} GFLOP/s")
    load_avg = report.get("load_average")
    facts.append("load avg " + (f"{load_avg['start'][0]:.1f} -> {load_avg['end'][0]:.1f}" if load_avg else "not recorded"))
    text = ", ".join(facts)
    cpus = machine.get("cpu_count") or 1
    # The benchmark's own threads hold the load near the CPU count (2.0-2.1 on 2 CPUs, as read right
    # after a run); half a CPU above that is someone else's work.
    if load_avg and max(load_avg["start"][0], load_avg["end"][0]) > cpus + 0.5:
        text += (f". **Loaded run** (load above {cpus + 0.5:g} on {cpus} CPUs): the measured peak and every time are inflated, "
                 "torch's (OpenMP threads) far more than JAX's, so torch / JAX ratios and efficiencies here are "
                 "not meaningful; only same-framework ratios within the file are")
    return text


def efficiency(jax_part: dict) -> str:
    if jax_part.get("efficiency_vs_matmul_peak") is not None:
        return fmt(100 * jax_part["efficiency_vs_matmul_peak"], 1, " %")
    if jax_part.get("efficiency_if_no_early_stop") is not None:
        return "<= " + fmt(100 * jax_part["efficiency_if_no_early_stop"], 1, " %")
    return "-"


def attack_table(report: dict, name: str) -> list[str]:
    rows = any("model_rows" in c for m in report["models"] for c in m["cases"])
    lines = [f"From {run_facts(report, name)}.", "",
             "| model | attack | JAX s | compile s | torch s | torch / JAX | efficiency | robust acc JAX / torch |"
             + (" model rows torch / JAX |" if rows else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if rows else "")]
    for model in report["models"]:
        for case in model["cases"]:
            jax_part, agreement = case["jax"], case["agreement"]
            torch_s = case.get("torch", {}).get("torch_seconds_scaled_to_batch")
            accs = " / ".join(fmt(agreement[k]["robust_accuracy"], 3) for k in ("jax", "torch") if k in agreement)
            line = (f"| {model['model']} b{model['batch']} | {case['attack']} | {fmt(jax_part['steady_seconds_median'])} "
                    f"| {fmt(jax_part['compile_seconds'], 1)} | {fmt(torch_s)} | {fmt(case.get('torch_over_jax'), 2)} "
                    f"| {efficiency(jax_part)} | {accs} |")
            if rows:
                line += f" {fmt(case.get('model_rows', {}).get('torch_over_jax'), 2)} |"
            lines.append(line)
    if rows:
        lines += ["", "Model rows: the samples each side pushed through the model in one call (forward passes, a "
                  "gradient's included; chunk padding counts), torch / JAX: above 1, ours did less work. "
                  "torch / JAX time divided by it is the speed per row. Not counted where torch loops per image "
                  "through Jacobians (DeepFool, JSMA)."]
    unsupported = sorted({(m["model"], c["attack"], c["torch_unsupported"]) for m in report["models"]
                          for c in m["cases"] if c.get("torch_unsupported")})
    for model, attack, why in unsupported:
        lines += ["", f"No torch time for {model} {attack}: {why}."]
    return lines + [""]


def ratio_table(before: dict, after: dict) -> list[str]:
    """torch / JAX per case, before vs after, where both files have the case."""
    def ratios(report):
        return {(m["model"], c["attack"]): c.get("torch_over_jax") for m in report["models"] for c in m["cases"]}

    old, new = ratios(before), ratios(after)
    lines = ["| model | attack | torch / JAX before | torch / JAX after |", "|---|---|---|---|"]
    for key in sorted(new):
        lines.append(f"| {key[0]} | {key[1]} | {fmt(old.get(key), 2)} | {fmt(new[key], 2)} |")
    return lines + [""]


def probe_table(report: dict, name: str) -> list[str]:
    lines = [f"From {run_facts(report, name)}; PGD-{report['attack'].split('-')[-1]}, paper CNN, batch "
             f"{report['batch']}, median of {report['repeats']} interleaved calls.", "",
             "| variant | steady s | x unrolled | compile s | max abs diff vs unrolled | convolution dim_labels in the optimised HLO |",
             "|---|---|---|---|---|---|"]
    for variant, row in report["variants"].items():
        layouts = ", ".join(f"`{k}` x{v}" for k, v in row["conv_dim_labels"].items())
        lines.append(f"| {variant} | {fmt(row['steady_seconds_median'])} | {fmt(row['over_unrolled'], 2)} "
                     f"| {fmt(row['compile_seconds'], 1)} | {fmt(row['max_abs_diff_vs_unrolled'], 4)} | {layouts} |")
    return lines + [""]


def train_table(report: dict, name: str) -> list[str]:
    lines = [f"From {run_facts(report, name)}.", "",
             "| impl | strategy | seeds | seed mode | batch | steady s | compile s | efficiency |",
             "|---|---|---|---|---|---|---|---|"]
    for case in report["cases"]:
        eff = case.get("efficiency_vs_matmul_peak")
        impl = case["impl"] + (" (conv as matmul)" if case.get("conv_as_matmul") else "")
        lines.append(f"| {impl} | {case['strategy']} | {case['seeds']} | {case.get('seed_mode', '-')} "
                     f"| {case['batch']} | {fmt(case['steady_seconds_median'])} | {fmt(case.get('compile_seconds'), 1)} "
                     f"| {fmt(None if eff is None else 100 * eff, 1, ' %')} |")
    ratios = report.get("ratios", {})
    for key, text in (("torch_over_jax_deep_1_seed", "torch / JAX, DEEP step, one seed"),
                      ("torch_over_jax_deep_1_seed_conv_as_matmul",
                       "torch / JAX, DEEP step, one seed, `PaperCNN(conv_as_matmul=True)`")):
        if ratios.get(key) is not None:
            lines += ["", f"{text}: **{ratios[key]:.2f}** (> 1: ours faster)."]
    return lines + [""]


def gfa_probe_table(report: dict, name: str) -> list[str]:
    lines = [f"From {run_facts(report, name)}; parameter gradient of the DEEP GFA loss (beta {report['beta']}), "
             f"paper CNN, batch {report['batch']}, interleaved; max abs gradient difference "
             f"{report['max_abs_grad_diff']:.1e}.", "",
             "| convolution | steady s | efficiency |", "|---|---|---|"]
    for variant, row in report["variants"].items():
        eff = row.get("efficiency_vs_matmul_peak")
        lines.append(f"| {variant} | {fmt(row['steady_seconds_median'])} | {fmt(None if eff is None else 100 * eff, 1, ' %')} |")
    return lines + [""]


def sweep_table(report: dict, name: str) -> list[str]:
    """The in-program sweep (``benchmarks/in_program_sweep.py``): one program for every member against
    the single-seed program, and whole runs against one process per member."""
    lines = [f"From `{name}`: {report['model']}, batch {report['batch']}, axes `{json.dumps(report['axes'])}`, "
             f"{report['seeds']} seeds.", "",
             "| program | members | compile s | steady s per step | s per member-step | programs for 3 value sets |",
             "|---|---|---|---|---|---|"]
    for key in ("in_program", "one_seed_program"):
        row = report[key]
        lines.append(f"| {key.replace('_', ' ')} | {row['members']} | {fmt(row['compile_seconds'], 1)} "
                     f"| {fmt(row['steady_seconds_median'])} | {fmt(row['seconds_per_member_step'])} "
                     f"| {row['programs_compiled_for_3_value_sets']} |")
    lines += ["", f"Single-seed program / in-program, per member-step: **{report['per_member_step_speedup']:.2f}** "
                  "(> 1: the sweep program is faster per member)."]
    runs = report.get("whole_runs")
    if runs:
        lines += [f"Whole runs ({runs['members']} members, {runs['epochs']} epoch on {runs['train_size']} images, "
                  f"process start, data, compile and evaluation included): one process "
                  f"{fmt(runs['one_process_seconds'], 1)} s, one process per member "
                  f"{fmt(runs['separate_processes_seconds'], 1)} s in all: **{runs['speedup']:.2f}x**."]
    return lines + [""]


# Issue 15's targets: torch / JAX at least this, per attack (>= 1 for every attack torchattacks has).
RATIO_TARGETS = {"deepfool": 5.0, "cw_l2": 5.0}
COMPILE_TARGET_SECONDS = 10.0


EARLY_STOP_NOTE = ("Attacks marked early stop in the tables below end once every sample is fooled; on these "
                   "random-weight models at 8/255 that happens in the first iterations, so their ratios measure the "
                   "early stop more than the per-iteration speed (FGSM / PGD / BIM measure that).")


def target_table(before: dict, after: dict, before_name: str, after_name: str,
                 note: str = EARLY_STOP_NOTE) -> list[str]:
    """Per attack: JAX and torch seconds before and after, the ratio, and issue 15's target met or not."""
    def cases(report):
        return {(m["model"], c["attack"]): c for m in report["models"] for c in m["cases"]}

    old, new = cases(before), cases(after)
    lines = [f"Before: {run_facts(before, before_name)}.", "", f"After: {run_facts(after, after_name)}.", "",
             "| model | attack | JAX s before | JAX s after | torch s before | torch s after | torch / JAX before "
             "| torch / JAX after | target | met | compile s after |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(new, key=lambda k: (k[0], k[1])):
        b, a = old.get(key, {}), new[key]
        target = RATIO_TARGETS.get(key[1], 1.0)
        ratio, compile_s = a.get("torch_over_jax"), a["jax"]["compile_seconds"]
        met = "-" if ratio is None else ("yes" if ratio >= target and compile_s < COMPILE_TARGET_SECONDS else "**no**")
        lines.append(
            f"| {key[0]} | {key[1]} | {fmt(b.get('jax', {}).get('steady_seconds_median'))} "
            f"| {fmt(a['jax']['steady_seconds_median'])} | {fmt(b.get('torch', {}).get('torch_seconds_scaled_to_batch'))} "
            f"| {fmt(a.get('torch', {}).get('torch_seconds_scaled_to_batch'))} | {fmt(b.get('torch_over_jax'), 2)} "
            f"| {fmt(ratio, 2)} | >= {target:.0f} | {met} | {fmt(compile_s, 1)} |")
    return lines + ["", f"Met: torch / JAX at or above the target and compile under {COMPILE_TARGET_SECONDS:.0f} s. "
                    + note, ""]


def deep_step_table(before: dict, after: dict, before_name: str, after_name: str) -> list[str]:
    """The DEEP GFA step, one seed: ours and PyTorch's, before and after, with efficiencies."""
    def row(report, impl, strategy):
        return next((c for c in report["cases"] if c["impl"] == impl and c["strategy"] == strategy
                     and c["seeds"] == 1 and not c.get("conv_as_matmul")), None)

    lines = [f"Before: {run_facts(before, before_name)}.", "", f"After: {run_facts(after, after_name)}.", "",
             "| step | ours s | PyTorch s | PyTorch / ours | ours % of peak | PyTorch % of peak | compile s |",
             "|---|---|---|---|---|---|---|"]
    for label, report in (("before", before), ("after", after)):
        for strategy in ("standard", "deep"):
            ours, torch = row(report, "jax", strategy), row(report, "torch", strategy)
            if ours is None:
                continue
            torch_s = torch["steady_seconds_median"] if torch else None
            eff = lambda c: None if c is None or c.get("efficiency_vs_matmul_peak") is None else (
                100 * c["efficiency_vs_matmul_peak"])
            lines.append(f"| {strategy} {label} | {fmt(ours['steady_seconds_median'])} | {fmt(torch_s)} "
                         f"| {fmt(None if torch_s is None else torch_s / ours['steady_seconds_median'], 2)} "
                         f"| {fmt(eff(ours), 1, ' %')} | {fmt(eff(torch), 1, ' %')} | {fmt(ours.get('compile_seconds'), 1)} |")
    interleaved = [(label, report["interleaved_deep_vs_torch"]) for label, report in (("before", before), ("after", after))
                   if report.get("interleaved_deep_vs_torch")]
    if interleaved:
        lines += ["", "The DEEP steps alternated call by call (both exposed to the same drift of this shared VM's speed):",
                  "", "| DEEP, interleaved | rounds | ours s | PyTorch s | PyTorch / ours (median of rounds, min-max) "
                  "| ours % of peak | PyTorch % of peak |", "|---|---|---|---|---|---|---|"]
        for label, row in interleaved:
            low, high = row["torch_over_jax_rounds_min_max"]
            pct = lambda key: fmt(None if row.get(key) is None else 100 * row[key], 1, " %")
            lines.append(f"| {label} | {row['rounds']} | {fmt(row['jax_seconds_median'])} | {fmt(row['torch_seconds_median'])} "
                         f"| **{row['torch_over_jax_median_of_rounds']:.2f}** ({low:.2f}-{high:.2f}) "
                         f"| {pct('jax_efficiency_vs_matmul_peak')} | {pct('torch_efficiency_vs_matmul_peak')} |")
    return lines + ["", "Efficiency: XLA's FLOP count of the step as written (plain convolutions) over the steady "
                    "time, against the matmul peak measured in the same run; PyTorch's uses the same count.", ""]


def resample_table(report: dict, name: str) -> list[str]:
    """``resample.json``: DI2-FGSM's shrink-and-shift as two-tap gathers vs jax.image's dense matrices."""
    lines = [f"From {run_facts(report, name)}.", "",
             "| images | pass | gathers s | dense s | dense / gathers | max abs difference |", "|---|---|---|---|---|---|"]
    for images, case in report["cases"].items():
        for kind in ("forward", "gradient"):
            gathers, dense = case[f"gathers/{kind}"], case[f"dense/{kind}"]
            lines.append(f"| {images} {report['shapes'][images]} | {kind} | {gathers['steady_seconds_median'] * 1e3:.2f} ms "
                         f"| {dense['steady_seconds_median'] * 1e3:.2f} ms | {case[f'dense_over_gathers_{kind}']:.2f} "
                         f"| {case[f'max_abs_difference_{kind}']:.1e} |")
    return lines + ["", "Both ways timed side by side in alternating rounds; half of the samples resized (DI's "
                    "`diversity_prob` 0.5), the others left unchanged.", ""]


def random_compile_table(report: dict, name: str) -> list[str]:
    """``random_compile.json``: compile seconds of jax.random's shaped draws vs the same draws made flat."""
    lines = [f"From {run_facts(report, name)}; batch {report['batch']}, threefry partitionable "
             f"{report['threefry_partitionable']}.", "",
             "| program | compile s, shaped (median, min) | compile s, flat (median, min) | shaped / flat "
             "| fused kernels | run s per call, shaped / flat | same output |", "|---|---|---|---|---|---|---|"]
    for section in ("draws", "attacks"):
        for program, row in report[section].items():
            shaped, flat = row["shaped"], row["flat"]
            steady = (f"{shaped['steady_seconds_median'] * 1e3:.2f} / {flat['steady_seconds_median'] * 1e3:.2f} ms"
                      if "steady_seconds_median" in flat else "-")
            lines.append(f"| {program} | {shaped['compile_seconds_median']:.2f} ({shaped['compile_seconds_min']:.2f}) "
                         f"| {flat['compile_seconds_median']:.2f} ({flat['compile_seconds_min']:.2f}) "
                         f"| {row['shaped_over_flat']:.2f} | {flat['fused_kernels']} | {steady} "
                         f"| {'yes' if row['same_output'] else 'NO'} |")
    return lines + ["", "Compile: `lower().compile()` of a fresh program, tracing excluded, the two ways alternating. "
                    "In the attacks, `shaped` is the same library with `gfa_jax.random_draws` swapped for "
                    "jax.random's draws while tracing.", ""]


def profile_table(report: dict, name: str) -> list[str]:
    """``cpu_profile.json``: seconds and page faults per call per variant, the slowest ops, the micro cases."""
    lines = [f"From {run_facts(report, name)}; batch {report['batch']}.", "",
             "| program | variant | s per call | minor page faults per call | slowest ops of one traced call (ms) |",
             "|---|---|---|---|---|"]
    for program, variants in report["programs"].items():
        for variant, row in variants.items():
            ops = ", ".join(f"`{op['op']}` {op['ms_per_call']:.0f}" for op in row["top_ops_traced_call"][:5])
            lines.append(f"| {program} | {variant} | {fmt(row['steady_seconds_median'])} "
                         f"| {row['minor_page_faults_per_call']:.0f} | {ops} |")
    micro = report.get("micro")
    if micro:
        lines += ["", "| single op (allocator on) | s |", "|---|---|"]
        lines += [f"| {key.replace('_', ' ')} | {fmt(row['steady_seconds_median'], 4)} |"
                  for key, row in micro.items() if isinstance(row, dict)]
        lines += ["", f"Max abs difference, pooling gradients: {micro['max_abs_diff_pool_gradients']:.1e}; "
                      f"conv1 outputs: {micro['max_abs_diff_conv1']:.1e}."]
    return lines + [""]


# What the "after" code of each headline run was.
AFTER = {
    "attacks_v5.json": "session 8's code (page-fault, pooling, convolution and sorting fixes, runs compacted to "
                       "the samples still robust, Square's queries too).",
    "attacks_v6.json": "session 9's first run (session 8's code plus C&W's and EAD's iterations compacted "
                       "between two early-abort checks and JSMA's pair search by blocks of rows); every registered "
                       "attack that torchattacks also has.",
    "attacks_v7.json": "session 9's code (session 8's, plus C&W's, EAD's and JSMA's iterations run only on the "
                       "samples still going, JSMA's pair search by blocks of rows, Square's leftover samples in "
                       "chunks of 32, PI-FGSM's depthwise convolution as a shifted sum); every registered attack "
                       "that torchattacks also has.",
    "attacks_v8.json": "session 10's code (session 9's, plus APGD's restarts and APGD-T's and FAB-T's targets "
                       "packed several to a chunk once few samples are left); JAX and torch timed in alternating "
                       "rounds, each side at least one second of calls; every registered attack that torchattacks "
                       "also has.",
    "attacks_v9.json": "session 11's code (session 10's, plus DI2-FGSM's per-sample shrink-and-shift as two-tap "
                       "gathers with a gather-only gradient, `resample.json`); timed as `attacks_v8.json`; every "
                       "registered attack that torchattacks also has.",
    "attacks_v10.json": "session 12's code (session 11's, plus random draws made flat, `random_compile.json`; "
                        "APGD's start evaluated inside its loop; Square's query draws from one draw); timed as "
                        "`attacks_v9.json`; every registered attack that torchattacks also has.",
    "attacks_v7_small_eps.json": "session 9: each run (and Square's queries, with leftover samples in chunks of "
                                 "32) compacted to the samples still robust",
    "attacks_v5_small_eps.json": "session 8: each run (and Square's queries) compacted to the samples still robust",
}


def newest(results: pathlib.Path, names: tuple[str, ...]) -> str:
    """The first of ``names`` present in ``results`` (the newest run), else the last."""
    return next((name for name in names if (results / name).exists()), names[-1])


def build(results: pathlib.Path) -> str:
    out = ["# Benchmark results", "",
           "Generated by `benchmarks/summarize.py` from the JSON files in this folder; do not edit by hand.",
           "Commands to regenerate them: `results/README.md`. All times are seconds per call (median);",
           "torch / JAX > 1 means ours is faster. Timings from runs on a loaded machine are only comparable",
           "within one file (side by side), not across files.", ""]
    after_name = newest(results, ("attacks_v10.json", "attacks_v9.json", "attacks_v8.json", "attacks_v7.json", "attacks_v6.json", "attacks_v5.json"))
    before, after = load(results / "attacks_v3_before.json"), load(results / after_name)
    if before and after:
        out += ["## Issue 15: attacks vs torchattacks, before and after", "",
                "Before = main at 237c174 (`git worktree`, session 6, quiet machine); after = "
                + AFTER[after_name] + " Causes and evidence: `cpu_profile.md`. A `-` before: the case was "
                "not benchmarked then.", ""]
        out += target_table(before, after, "attacks_v3_before.json", after_name)
    small_name = newest(results, ("attacks_v7_small_eps.json", "attacks_v5_small_eps.json"))
    before, after = load(results / "attacks_v3_small_eps.json"), load(results / small_name)
    if before and after:
        out += [f"## Issue 15: early-stopping attacks on their whole budget (L-inf eps {after['eps01']:g} on [0, 1])",
                "", "At this radius most samples of the random models stay robust (robust accuracy in the tables "
                "below), so APGD, APGD-T, FAB-T and Square cannot stop early. Before = session 6 (full-batch runs "
                f"with masks); after = {AFTER[small_name]} (chunks of {after.get('chunk_rows', '?')} on CPU) and "
                "FAB's faster sort.", ""]
        other = load(results / after_name)
        fgsm = [c.get("torch_over_jax") for m in (other or {}).get("models", []) if m["model"] == "cnn"
                for c in m["cases"] if c["attack"] == "fgsm"]
        note = "One forward + backward (FGSM) is at parity and moves across 1.0 between quiet runs of the same code on this VM"
        if fgsm and fgsm[0] is not None:
            note += f" (CNN FGSM {fgsm[0]:.2f} in `{after_name}`)"
        out += target_table(before, after, "attacks_v3_small_eps.json", small_name, note=note + ".")
    aa_files = ("autoattack_v9.json", "autoattack_v8.json", "autoattack_v7.json", "autoattack_v6.json",
                "autoattack_v6_small_eps.json", "autoattack_v5.json",
                "autoattack_v5_small_eps.json", "autoattack_v4.json",
                "autoattack_v4_small_eps.json", "autoattack_v4_small_eps_one_chunk.json")
    if any((results / name).exists() for name in aa_files):
        out += ["## Issue 15: AutoAttack (standard) vs torchattacks' MultiAttack of the same members", "",
                "10 iterations per member (torchattacks' default), 100 Square queries. `_one_chunk` is ours with "
                "`--chunk-size 256` (the whole batch in one chunk, masked: what compaction saves).", ""]
        for name in aa_files:
            report = load(results / name)
            if report:
                out += [f"### `{name}` (L-inf eps {report['eps01']:g} on [0, 1], chunks of "
                        f"{report.get('chunk_rows', '?')})", ""] + attack_table(report, name)
    deep_step_runs = (
        ("train_step_cnn_v5.json", "train_step_cnn_v6.json", "the DEEP GFA train step, re-run in session 12",
         "Before = session 11's run; after = the same step (no change to the model, the loss or the train step "
         "since session 8), run again in session 12: the step time is the same, the measured matmul peak is not."),
        ("train_step_cnn_v4.json", "train_step_cnn_v5.json", "the DEEP GFA train step, re-run in session 11",
         "Before = session 8's run of session 8's code; after = the same step (no change to the model, the loss "
         "or the train step since), run again in session 11: the difference between the two is this VM's drift."),
        ("train_step_cnn_v4_before.json", "train_step_cnn_v4.json",
         "the DEEP GFA train step vs PyTorch's double backward",
         "Before = main at c88aefb (`git worktree`, session 7's end); after = session 8's code (max pooling's "
         "derivative without a divide, the kernel gradient's taps split between its operands, im2col in two "
         "fusible steps, Dense kernel gradients in the kernel's layout). Causes and evidence: `cpu_profile.md`."),
        ("train_step_cnn_v3_before.json", "train_step_cnn_v3.json", "the DEEP GFA train step, session 7",
         "Before = main at 237c174 (session 6); after = session 7's code."),
    )
    for before_name, after_name, title, description in deep_step_runs:
        before, after = load(results / before_name), load(results / after_name)
        if before and after:
            out += [f"## Issue 15: {title}", "", description, ""]
            out += deep_step_table(before, after, before_name, after_name)
    resample = load(results / "resample.json")
    if resample:
        out += ["## Issue 15: DI2-FGSM's resize-and-pad (`resample.json`)", ""] + resample_table(resample, "resample.json")
    random_compile = load(results / "random_compile.json")
    if random_compile:
        out += ["## Issue 15: compile time of random draws (`random_compile.json`)", ""]
        out += random_compile_table(random_compile, "random_compile.json")
    profile = load(results / "cpu_profile.json")
    if profile:
        out += ["## Issue 15: where a CNN gradient's time goes on XLA:CPU (`cpu_profile.json`)", ""]
        out += profile_table(profile, "cpu_profile.json")
    for name in ("attacks_v10.json", "attacks_v9.json", "attacks_v8.json", "attacks_v7.json", "attacks_v7_small_eps.json", "attacks_v6.json",
                 "attacks_v5.json", "attacks_v5_small_eps.json",
                 "attacks_v4_small_eps.json",
                 "attacks_v3_small_eps.json", "attacks_v4.json",
                 "attacks_v3.json", "attacks_v3_before.json"):
        report = load(results / name)
        if report:
            out += [f"### Every case (`{name}`)", ""] + attack_table(report, name)
    probe = load(results / "loop_probe.json")
    if probe:
        out += ["## The rolled-loop slowdown (cause: `loop_slowdown.md`)", ""] + probe_table(probe, "loop_probe.json")
    for model in ("cnn", "mlp"):
        before, after = load(results / f"attacks_{model}.json"), load(results / f"attacks_{model}_v2.json")
        if after:
            out += [f"## Attacks, {model.upper()}: after", ""] + attack_table(after, f"attacks_{model}_v2.json")
        if before:
            out += [f"## Attacks, {model.upper()}: before", ""] + attack_table(before, f"attacks_{model}.json")
        if before and after:
            out += [f"### torch / JAX, {model.upper()}, before vs after (different runs and loads)", ""]
            out += ratio_table(before, after)
    unrolled = load(results / "attacks_cnn_unrolled.json")
    if unrolled:
        out += ["## Attacks, CNN, before: gradient attacks unrolled", ""] + attack_table(unrolled, "attacks_cnn_unrolled.json")
    probe = load(results / "gfa_step_probe.json")
    if probe:
        out += ["## DEEP GFA gradient: XLA convolution vs im2col + matmul", ""] + gfa_probe_table(probe, "gfa_step_probe.json")
    for name in ("in_program_sweep_mlp_30.json", "in_program_sweep_mlp_processes.json"):
        report = load(results / name)
        if report:
            out += [f"## In-program hyperparameter sweep (`{name}`)", ""] + sweep_table(report, name)
    for name in ("train_step_cnn_v2.json", "train_step_cnn.json"):
        report = load(results / name)
        if report:
            out += [f"## Train step (`{name}`)", ""] + train_table(report, name)
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args()
    results = pathlib.Path(args.results)
    files.write_text_atomic(results / "README.md", build(results))
    print(f"wrote {results / 'README.md'}")


if __name__ == "__main__":
    main()
