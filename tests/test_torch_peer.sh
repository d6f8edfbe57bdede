#!/usr/bin/env bash
# The benchmark's PyTorch peer (bench/torch_qwen3.py) against the independent reference logits of
# tests/data/qwen3-tiny: last-position logits within 1e-4 relative, argmax at every position, and
# 16 greedy tokens through its KV cache. Skips (77) when Debian's python3-torch is not installed
# (scripts/install-deps.sh --bench installs it).
set -euo pipefail
SRC=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
DATA=${DATA:-$SRC/tests/data}
PY=${TORCH_PYTHON:-/usr/bin/python3}  # Debian python with python3-torch
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
  echo "test_torch_peer: SKIP: $PY cannot import torch + numpy (install with scripts/install-deps.sh --bench)"
  exit 77
fi
tiny=$DATA/qwen3-tiny
# F32 weights, then the same numbers stored as BF16 (exercises the BF16 loader)
"$PY" "$SRC/bench/torch_qwen3.py" --model "$tiny" --weights "$tiny/model-f32.safetensors" \
  --check "$tiny/expected.json" --rtol 1e-4 --threads 1
"$PY" "$SRC/bench/torch_qwen3.py" --model "$tiny" --weights "$tiny/model.safetensors" \
  --check "$tiny/expected.json" --rtol 1e-4 --threads 1
