#!/usr/bin/env bash
# Files written by trustee read by an independent reader: torch + json (tests/io_check.py, run
# with Debian's /usr/bin/python3 + python3-torch). First the reader itself on the reference
# checkpoint (BF16 widened == F32 exactly), then `trustee init-model` outputs: layout, names, shapes,
# dtypes, parameter count, init statistics, and BF16 == torch's rounding of the F32 twin (same seed).
# Skips (77) when torch is not installed.
set -uo pipefail
SRC=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
DATA=${DATA:-$SRC/tests/data}
PY=${TORCH_PYTHON:-/usr/bin/python3}
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "io_torch: SKIP: $PY cannot import torch"
  exit 77
fi
work=${BUILD:-/tmp}/io-torch
rm -rf "$work" && mkdir -p "$work"
set -e
"$PY" "$SRC/tests/io_check.py" tiny "$DATA/qwen3-tiny"
SMALL=(--hidden 64 --layers 2 --heads 4 --kv-heads 2 --head-dim 32 --intermediate 96)
for tie in tie untie; do
  for dt in f32 bf16; do
    log=$("$TRUSTEE" init-model --out "$work/$tie-$dt" "${SMALL[@]}" --$tie --dtype $dt --seed 11)
    params=$(echo "$log" | sed -n 's/^parameters: //p' | tr -d ,)
    twin=(); [ $dt = bf16 ] && twin=(--f32-twin "$work/$tie-f32")
    "$PY" "$SRC/tests/io_check.py" checkpoint "$work/$tie-$dt" --expect-params "$params" "${twin[@]}"
  done
done
rm -rf "$work"
echo "io_torch: ok"
