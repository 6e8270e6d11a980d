#!/usr/bin/env bash
# Fashion-MNIST MLP, standard / FIRST / DEEP, five seeds each (Tables 5 and 6, Figures 10-11 of
# DeepDefense): train the three strategies, then compare them in one robustness report.
#   bash launch/fmnist_table6.sh [RUNS_DIR]        (default runs/)
# Offline: reads Debian's Fashion-MNIST (make fashion-mnist). Each command resumes if interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs}
python=${PYTHON:-.venv/bin/python}
for strategy in standard first deep; do
  "$python" -m gfa_jax.main --config "configs/fmnist_mlp_$strategy.py" --workdir "$runs/fmnist_mlp_$strategy" \
    --config.robustness.enabled=False
done
"$python" -m gfa_jax.gfa_table "$runs"/fmnist_mlp_{standard,first,deep} | tee "$runs/fmnist_table5.md"
# The attack budgets of the config, reduced to what a 2-core CPU evaluates in about half an hour
# (drop the two overrides on a GPU).
"$python" -m gfa_jax.evaluate --config configs/fmnist_mlp_standard.py \
  --workdirs "$runs/fmnist_mlp_standard,$runs/fmnist_mlp_first,$runs/fmnist_mlp_deep" --outdir "$runs/fmnist_report" \
  --robustness.num_samples=500 \
  --robustness.attack_options.apgd.n_iter=50 --robustness.attack_options.apgd_t.n_iter=50 \
  --robustness.attack_options.apgd_t.n_target_classes=3 --robustness.attack_options.square.n_queries=500 \
  --robustness.attack_options.cw_l2.steps=50 --robustness.attack_options.cw_l2.binary_search_steps=5 \
  --robustness.attack_options.cw_l2.initial_const=0.1 --robustness.attack_options.ead_en.steps=50 \
  --robustness.attack_options.ead_en.binary_search_steps=5 --robustness.attack_options.ead_en.initial_const=0.1
