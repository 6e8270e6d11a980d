#!/usr/bin/env bash
# CIFAR-10 CNN, the strategies of Tables 1-2 (standard, DEEP, FIRST, and the baselines ADV, GAIE,
# DENOISE), five seeds, shortened to what a 2-core CPU allows: 10,000 training images, 2,000 test
# images, 4 epochs, then a reduced Table 2 evaluation. STRATEGIES="standard deep" runs a subset.
#   bash launch/cifar_cpu.sh PATH/TO/cifar10-jpg.tar.gz [RUNS_DIR]
# With a GPU and internet, drop the data and length overrides: configs/cifar_*.py are full length.
set -euo pipefail
cd "$(dirname "$0")/.."
archive=${1:?usage: launch/cifar_cpu.sh PATH/TO/cifar10-jpg.tar.gz [RUNS_DIR]}
runs=${2:-runs}
python=${PYTHON:-.venv/bin/python}
short="--config.data.source=image_folder --config.data.data_dir=$archive --config.data.train_size=10000
       --config.data.test_size=2000 --config.eval.train_samples=2000 --config.num_epochs=4
       --config.robustness.enabled=False"
strategies=(${STRATEGIES:-standard deep first adv gaie denoise})
for strategy in "${strategies[@]}"; do
  # shellcheck disable=SC2086
  "$python" -m gfa_jax.main --config "configs/cifar_$strategy.py" --workdir "$runs/cifar_$strategy" $short
done
workdirs=("${strategies[@]/#/$runs/cifar_}")
"$python" -m gfa_jax.gfa_table "${workdirs[@]}" | tee "$runs/cifar_table1.md"
"$python" -m gfa_jax.evaluate --config configs/cifar_standard.py \
  --workdirs "$(IFS=,; echo "${workdirs[*]}")" --outdir "$runs/cifar_report" \
  --robustness.attacks=fgsm,pgd,pgd_l2,apgd,deepfool --robustness.num_samples=200 \
  --robustness.attack_options.apgd.n_iter=20 --robustness.attack_options.deepfool.max_iter=20
