#!/usr/bin/env bash
# Fashion-MNIST MLP, standard / FIRST / DEEP, five seeds each (Tables 5 and 6, Figures 10-11 of
# DeepDefense): the sweep configs/sweeps/deepdefense_fmnist.py:cpu (here, one run at a time), then
# the three strategies compared in one robustness report.
#   bash launch/fmnist_table6.sh [RUNS_DIR]        (default runs/; workdirs in RUNS_DIR/sweeps/fmnist_table6)
# Offline: reads Debian's Fashion-MNIST (make fashion-mnist). Started again, it skips finished runs and
# resumes the others. On SLURM: python -m gfa_jax.launch configs/sweeps/deepdefense_fmnist.py --executor=slurm
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs}
python=${PYTHON:-.venv/bin/python}
sweep_dir=$runs/sweeps/fmnist_table6
"$python" -m gfa_jax.launch configs/sweeps/deepdefense_fmnist.py:cpu,standard,first,deep --executor=local \
  --sweep_dir="$sweep_dir"
mapfile -t workdirs < <("$python" -m gfa_jax.launch workdirs "$sweep_dir")
"$python" -m gfa_jax.gfa_table "${workdirs[@]}" | tee "$runs/fmnist_table5.md"
# The attack budgets of the config, reduced to what a 2-core CPU evaluates in about half an hour
# (drop the two overrides on a GPU).
"$python" -m gfa_jax.evaluate --config configs/fmnist_mlp_standard.py \
  --workdirs "$(IFS=,; echo "${workdirs[*]}")" --outdir "$runs/fmnist_report" \
  --robustness.num_samples=500 \
  --robustness.attack_options.apgd.n_iter=50 --robustness.attack_options.apgd_t.n_iter=50 \
  --robustness.attack_options.apgd_t.n_target_classes=3 --robustness.attack_options.square.n_queries=500 \
  --robustness.attack_options.cw_l2.steps=50 --robustness.attack_options.cw_l2.binary_search_steps=5 \
  --robustness.attack_options.cw_l2.initial_const=0.1 --robustness.attack_options.ead_en.steps=50 \
  --robustness.attack_options.ead_en.binary_search_steps=5 --robustness.attack_options.ead_en.initial_const=0.1
