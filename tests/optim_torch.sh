#!/usr/bin/env bash
# AdamW + grad clip + schedule + NaN skip of learner/optim.c against torch.optim.AdamW
# (tests/optim_torch_check.py, /usr/bin/python3 with Debian's python3-torch).
set -euo pipefail
TORCH_PYTHON=${TORCH_PYTHON:-/usr/bin/python3}
if ! "$TORCH_PYTHON" -c 'import torch, numpy' 2>/dev/null; then
  echo "SKIP: $TORCH_PYTHON cannot import torch + numpy (scripts/install-deps.sh --tests)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BUILD/tests/optim_torch_run" "$tmp/run.safetensors"
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$TORCH_PYTHON" "$SRC/tests/optim_torch_check.py" "$tmp/run.safetensors"
