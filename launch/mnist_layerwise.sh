#!/usr/bin/env bash
# Layer-wise adversarial training on MNIST (Tables I-VII of the layer-wise paper): 4FC and
# 3Conv2FC, every placement, five seeds, then one worst-case table per model.
#   bash launch/mnist_layerwise.sh MNIST_IDX_DIR [RUNS_DIR]
# MNIST_IDX_DIR holds MNIST's IDX files; with only the t10k-* test files (our offline copy) the
# loader splits them 8,000 train / 2,000 test and says so. Shortened for a 2-core CPU (EPOCHS_4FC,
# EPOCHS_CONV, 500 attacked samples); the configs themselves are the paper's 200 epochs. Each
# command resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: launch/mnist_layerwise.sh MNIST_IDX_DIR [RUNS_DIR]}
runs=${2:-runs}
python=${PYTHON:-.venv/bin/python}
epochs_4fc=${EPOCHS_4FC:-10}
epochs_conv=${EPOCHS_CONV:-5}
data_flags="--config.data.source=idx --config.data.data_dir=$data --config.robustness.enabled=False"
# Every attack on 500 test samples, clean and at eps 0.1 on [0, 1] images (0.2 on our inputs).
evaluation=(--robustness.num_samples=500 --robustness.eps_linf='(0.0,0.2)')

train_rows() {  # config epochs row...
  local config=$1 epochs=$2; shift 2
  for row in "$@"; do
    # shellcheck disable=SC2086
    "$python" -m gfa_jax.main --config "configs/$config.py:$row" --workdir "$runs/${config}_${row//,/_}" \
      --config.num_epochs="$epochs" $data_flags
  done
}

report() {  # config outdir row...
  local config=$1 outdir=$2; shift 2
  local workdirs
  workdirs=$(printf "$runs/${config}_%s," "${@//,/_}")
  "$python" -m gfa_jax.evaluate --config "configs/$config.py:standard" --workdirs "${workdirs%,}" \
    --outdir "$runs/$outdir" "${evaluation[@]}"
  cat "$runs/$outdir/table_worst_case.md"
}

fc_rows=(standard adv_input layer2 layer3 layer4 layers2_3 layers3_4 all_o all_w layer2,fixed layers2_3,fixed)
train_rows mnist_4fc_layerwise "$epochs_4fc" "${fc_rows[@]}"
report mnist_4fc_layerwise mnist_4fc_report "${fc_rows[@]}"

conv_rows=(standard adv_input conv2 conv3 conv2_3 conv2_3_fc1 all_o conv_w all_w)
train_rows mnist_3conv2fc_layerwise "$epochs_conv" "${conv_rows[@]}"
report mnist_3conv2fc_layerwise mnist_3conv2fc_report "${conv_rows[@]}"
