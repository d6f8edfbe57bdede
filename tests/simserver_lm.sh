#!/bin/bash
# sim/server's LM backend on a tiny random-weight, full-vocabulary Qwen3 made here by
# `trustee init-model` (hidden 64, 2 layers): see tests/test_simserver_lm.c. $1: the test binary.
set -euo pipefail
TRUSTEE=${TRUSTEE:?set TRUSTEE to the trustee binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$TRUSTEE" init-model --out "$tmp/m" --seed 1 --hidden 64 --layers 2 --heads 2 --kv-heads 1 \
  --head-dim 32 --intermediate 128 > /dev/null
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$1" "$tmp/m"
