#!/usr/bin/env bash
# Layer-wise adversarial training on MNIST (Tables I-VII of the layer-wise paper): 4FC and
# 3Conv2FC, every placement, five seeds (the sweep configs/sweeps/layerwise_mnist.py:cpu, one run
# at a time), then one worst-case table per model.
#   bash launch/mnist_layerwise.sh MNIST_IDX_DIR [RUNS_DIR]   (workdirs in RUNS_DIR/sweeps/mnist_*)
# MNIST_IDX_DIR holds MNIST's IDX files; with only the t10k-* test files (our offline copy) the
# loader splits them 8,000 train / 2,000 test and says so. Shortened for a 2-core CPU (4FC 10
# epochs, 3Conv2FC 5; EPOCHS_4FC, EPOCHS_CONV change them; 500 attacked samples); the configs
# themselves are the paper's 200 epochs. Started again, it skips finished runs and resumes the others.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: launch/mnist_layerwise.sh MNIST_IDX_DIR [RUNS_DIR]}
runs=${2:-runs}
python=${PYTHON:-.venv/bin/python}
# Every attack on 500 test samples, clean and at eps 0.1 on [0, 1] images (0.2 on our inputs).
evaluation=(--robustness.num_samples=500 --robustness.eps_linf='(0.0,0.2)')

model_rows() {  # model config epochs_override outdir
  local model=$1 config=$2 epochs=$3 outdir=$4 sweep_dir=$runs/sweeps/mnist_$1
  local extra=(--set=data.data_dir="$(realpath "$data")")
  [[ -n $epochs ]] && extra+=(--set=num_epochs="$epochs")
  "$python" -m gfa_jax.launch "configs/sweeps/layerwise_mnist.py:cpu,$model" --executor=local \
    --sweep_dir="$sweep_dir" "${extra[@]}"
  local workdirs
  workdirs=$("$python" -m gfa_jax.launch workdirs "$sweep_dir" | paste -sd,)
  "$python" -m gfa_jax.evaluate --config "configs/$config.py:standard" --workdirs "$workdirs" \
    --outdir "$runs/$outdir" "${evaluation[@]}"
  cat "$runs/$outdir/table_worst_case.md"
}

model_rows 4fc mnist_4fc_layerwise "${EPOCHS_4FC:-}" mnist_4fc_report
model_rows 3conv2fc mnist_3conv2fc_layerwise "${EPOCHS_CONV:-}" mnist_3conv2fc_report
