#!/usr/bin/env bash
# CIFAR-10 CNN, standard and DEEP, five seeds, shortened to what a 2-core CPU allows: 10,000
# training images, 2,000 test images, 4 epochs, then a reduced Table 2 evaluation.
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
for strategy in standard deep; do
  # shellcheck disable=SC2086
  "$python" -m gfa_jax.main --config "configs/cifar_$strategy.py" --workdir "$runs/cifar_$strategy" $short
done
"$python" -m gfa_jax.gfa_table "$runs"/cifar_{standard,deep} | tee "$runs/cifar_table1.md"
"$python" -m gfa_jax.evaluate --config configs/cifar_standard.py \
  --workdirs "$runs/cifar_standard,$runs/cifar_deep" --outdir "$runs/cifar_report" \
  --robustness.attacks=fgsm,pgd,pgd_l2,apgd,deepfool --robustness.num_samples=200 \
  --robustness.attack_kwargs='{"apgd": {"n_iter": 20}, "deepfool": {"max_iter": 20}}'
