#!/usr/bin/env bash
# CPU attention benchmark: time per call of op_attention (the training forward: one page per row,
# q_len = kv_len = T) and op_attention_backward on random tensors, then the step time of
# `trustee sft` on oracle transcripts of one environment (sequences of ~1000 tokens).
#
#   bench/attention.sh        (about a minute on 2 cores)
#
# Settings (environment variables, defaults in brackets):
#   BUILD        build folder holding trustee and tests/bench_attention [build; built when missing]
#   B T HQ HKV D  op shape [8 1024 4 2 32]      THREADS  thread counts to time ["1 2"]
#   REPEATS      op calls per thread count, best kept [3]
#   SFT          1: also time `trustee sft` (3 steps, batch 8, hidden 128, 2 layers, 4/2 heads,
#                head dim 32, on 16 oracle transcripts of ENV) [1]      ENV [airline]
# Output: one line per thread count,
#   threads <n> attention_forward_ms <ms> attention_backward_ms <ms> checksum <c>
# and the sft summary line ("sft: 3 steps in <s> s") per thread count.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$SRC/build}
B=${B:-8} T=${T:-1024} HQ=${HQ:-4} HKV=${HKV:-2} D=${D:-32} THREADS=${THREADS:-"1 2"}
REPEATS=${REPEATS:-3} SFT=${SFT:-1} ENV=${ENV:-airline}

if [ ! -x "$BUILD/tests/bench_attention" ] || [ ! -x "$BUILD/trustee" ]; then
  echo "bench/attention.sh: building trustee and bench_attention in $BUILD"
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" --target trustee bench_attention -j "$(nproc)" >/dev/null
fi
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "machine: $(nproc) cores, ${cpu:-unknown CPU}; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ops:     B $B, T $T, Hq $HQ, Hkv $HKV, D $D, best of $REPEATS calls"
for n in $THREADS; do
  echo "threads $n $(OMP_NUM_THREADS=$n "$BUILD/tests/bench_attention" "$B" "$T" "$HQ" "$HKV" "$D" "$n" "$REPEATS")"
done
[ "$SFT" = 1 ] || exit 0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BUILD/trustee" env oracle --env "$ENV" --n 16 --out "$tmp/sft.jsonl" >/dev/null
"$BUILD/trustee" init-model --out "$tmp/pm" --seed 1 --hidden 128 --layers 2 --heads 4 --kv-heads 2 \
  --head-dim 32 --intermediate 384 --dtype f32 --force >/dev/null
for n in $THREADS; do
  line=$(OMP_NUM_THREADS=$n "$BUILD/trustee" sft --model "$tmp/pm" --data "$tmp/sft.jsonl" --out "$tmp/out" \
    --force --steps 3 --batch 8 --micro-batch 8 2>&1 | grep -E "steps in") || {
    echo "bench/attention.sh: trustee sft failed" >&2; exit 1; }
  echo "sft threads $n: $line"
done
