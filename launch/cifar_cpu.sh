#!/usr/bin/env bash
# CIFAR-10 CNN, the strategies of Tables 1-2 (standard, DEEP, FIRST, and the baselines ADV, GAIE,
# DENOISE), five seeds: the sweep configs/sweeps/deepdefense_cifar.py:cpu (10,000 training images,
# 2,000 test images, 4 epochs; one run at a time), then a reduced Table 2 evaluation.
# STRATEGIES="standard deep" runs a subset.
#   bash launch/cifar_cpu.sh PATH/TO/cifar10-jpg.tar.gz [RUNS_DIR]   (workdirs in RUNS_DIR/sweeps/cifar_cpu)
# With a GPU and internet: python -m gfa_jax.launch configs/sweeps/deepdefense_cifar.py --executor=slurm
set -euo pipefail
cd "$(dirname "$0")/.."
archive=${1:?usage: launch/cifar_cpu.sh PATH/TO/cifar10-jpg.tar.gz [RUNS_DIR]}
runs=${2:-runs}
python=${PYTHON:-.venv/bin/python}
strategies=${STRATEGIES:-standard deep first adv gaie denoise}
sweep_dir=$runs/sweeps/cifar_cpu
"$python" -m gfa_jax.launch "configs/sweeps/deepdefense_cifar.py:cpu,${strategies// /,}" --executor=local \
  --sweep_dir="$sweep_dir" --set=data.data_dir="$(realpath "$archive")"
mapfile -t workdirs < <("$python" -m gfa_jax.launch workdirs "$sweep_dir")
"$python" -m gfa_jax.gfa_table "${workdirs[@]}" | tee "$runs/cifar_table1.md"
"$python" -m gfa_jax.evaluate --config configs/cifar_standard.py \
  --workdirs "$(IFS=,; echo "${workdirs[*]}")" --outdir "$runs/cifar_report" \
  --robustness.attacks=fgsm,pgd,pgd_l2,apgd,deepfool --robustness.num_samples=200 \
  --robustness.attack_options.apgd.n_iter=20 --robustness.attack_options.deepfool.max_iter=20
