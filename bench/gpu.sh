#!/usr/bin/env bash
# GPU benchmark: the Qwen3 runtime on one CUDA GPU (bench/bench_gpu.c) beside an eager PyTorch
# Qwen3 on the same config and sizes (bench/torch_gpu.py), then the NCCL all-reduce bandwidth
# (bench_allreduce) when that binary was built.
#
#   bench/gpu.sh [bench_gpu options]     e.g. bench/gpu.sh --layers 8  (bench_gpu --help lists them)
#
# Default: a Qwen3-8B-shaped model (36 layers, random bf16 weights): decode at batch 1, 32, 128
# (prompt 128, 64 timed steps), prefill 8x512 and 2x2048, training 4x1024 (2 layers measured,
# extrapolated). Options are passed to both programs (torch_gpu.py takes the same names, less
# --hbm-tbs). Each line of ours is printed beside its roofline; then "ours/torch" per line.
#
# Settings (environment variables, defaults in brackets):
#   BUILD      build folder [build-gpu; configured Release with CUDA arch 90 and built when
#              bench_gpu is missing]
#   BENCH_GPU  the bench_gpu binary [$BUILD/tests/bench_gpu]
#   PYTHON     python with torch for the peer [python3]     TORCH  0: skip the torch peer [1]
# Without a usable GPU: prints "bench/gpu.sh: no usable CUDA device (...); nothing measured", exit 0.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$SRC/build-gpu}
BENCH_GPU=${BENCH_GPU:-$BUILD/tests/bench_gpu}
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-1}
me=bench/gpu.sh

if [ ! -x "$BENCH_GPU" ]; then
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  if [ ! -x "$nvcc" ]; then
    echo "$me: no usable CUDA device (no nvcc: bench_gpu cannot be built); nothing measured"
    exit 0
  fi
  echo "$me: building bench_gpu in $BUILD (Release, CUDA arch 90)"
  { cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER="$nvcc" &&
    cmake --build "$BUILD" --target bench_gpu -j "$(nproc)"; } >"$BUILD.log" 2>&1 ||
    { tail -20 "$BUILD.log" >&2; echo "$me: build failed (log: $BUILD.log)" >&2; exit 1; }
  BENCH_GPU=$BUILD/tests/bench_gpu
fi

ours=$(mktemp) theirs=$(mktemp)
trap 'rm -f "$ours" "$theirs"' EXIT
"$BENCH_GPU" "$@" | tee "$ours"
rc=${PIPESTATUS[0]}
if [ "$rc" = 77 ]; then
  reason=$(sed -n 's/^SKIP: no usable CUDA device (\(.*\))$/\1/p' "$ours")
  echo "$me: no usable CUDA device (${reason:-see above}); nothing measured"
  exit 0
fi
[ "$rc" = 0 ] || { echo "$me: bench_gpu exited $rc" >&2; exit 1; }

# the torch peer on the same config and sizes (bench_gpu-only options dropped)
targs=()
while [ $# -gt 0 ]; do
  case $1 in
    --hbm-tbs) shift 2 ;;
    --cpu | --dry-run) shift ;;
    *) targs+=("$1"); shift ;;
  esac
done
if [ "$TORCH" != 1 ]; then
  echo "torch peer: skipped (TORCH=$TORCH)"
elif ! why=$("$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "torch sees no GPU"' 2>&1); then
  echo "torch peer: skipped ($PYTHON: $(tail -1 <<<"$why"))"
else
  echo "---- torch peer (bench/torch_gpu.py) ----"
  PYTHONUNBUFFERED=1 "$PYTHON" "$SRC/bench/torch_gpu.py" "${targs[@]}" | tee "$theirs"
  echo "---- ours / torch ----"
  # key: everything before ": <number> tok/s"
  awk -F': ' '
    function rate(line) { split(line, w, " "); return w[1] + 0 }
    NR == FNR { if ($0 ~ /^(decode|prefill|training).*: [0-9.]+ tok\/s/) { k = $1; t[k] = rate(substr($0, length(k) + 3)) } next }
    /^(decode|prefill|training).*: [0-9.]+ tok\/s/ { k = $1; o = rate(substr($0, length(k) + 3))
      if (k in t && t[k] > 0) printf "%s: ours %.1f tok/s, torch %.1f tok/s, ours/torch %.2f\n", k, o, t[k], o / t[k]
      else printf "%s: ours %.1f tok/s, torch -\n", k, o }
  ' "$theirs" "$ours"
fi

# NCCL all-reduce bandwidth (bench/bench_allreduce.c), when built
for ar in "$BUILD/tests/bench_allreduce" "$BUILD/bench_allreduce" "$(dirname "$BENCH_GPU")/bench_allreduce"; do
  if [ -x "$ar" ]; then
    n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU') || n=1
    [ "$n" -ge 1 ] || n=1
    echo "---- all-reduce ($n GPU(s)): mpirun -np $n $ar ----"
    mpirun --allow-run-as-root --oversubscribe -np "$n" "$ar" || echo "$me: bench_allreduce exited $?"
    break
  fi
done
exit 0
