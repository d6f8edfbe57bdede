#!/bin/bash
# bench_gpu --dry-run: the parameter counts, 6N and the batch-1 decode roofline of Qwen3-8B, worked
# out by hand from its config.json (hidden 4096, 36 layers, 32/8 heads of 128, intermediate 12288,
# vocab 151936, untied):
#   per layer  q 4096*4096 + k, v 2*1024*4096 + o 4096*4096 + MLP 3*4096*12288 + norms 2*4096 + 2*128
#              = 16777216*2 + 4194304*2 + 150994944 + 8448 = 192946432
#   non-embedding = 36 * 192946432 + 4096 (final norm) = 6946075648;  LM head = 151936*4096 = 622329856
#   N = 7568405504;  bf16 bytes 15136811008 -> 3.35e12 / 15136811008 = 221.3 tok/s
# then the argument checks, and --layers / --config on the tiny test config (vocab 1024, hidden 64,
# 2 layers, 4/2 heads of 32, intermediate 192, tied): per layer 64*128 + 2*64*64 + 128*64 + 3*64*192
# + 2*64 + 2*32 = 8192 + 8192 + 8192 + 36864 + 192 = 61632.
set -u
BIN=$1 TINY=$2
fail=0
expect() { # expect NAME OUTPUT LINE...
    local name=$1 out=$2; shift 2
    for want in "$@"; do
        if ! grep -qxF -- "$want" <<<"$out"; then
            echo "FAIL ($name): missing line: $want"; fail=1
        fi
    done
}
out=$("$BIN" --dry-run) || { echo "FAIL: --dry-run exited $?"; fail=1; }
echo "$out"
expect 8b "$out" \
  "params per layer: 192946432" \
  "non-embedding params: 6946075648 (6.95e+09)" \
  "lm head params: 622329856 (6.22e+08)" \
  "embedding params: 622329856" \
  "total params: 8190735360 (8.191e+09)" \
  "N for 6N: 7568405504 (7.568e+09) = non-embedding + lm head" \
  "roofline decode batch=1: 221.3 tok/s (3.35 TB/s / weight bytes)"
# --layers 4: the counts of 4 layers
out=$("$BIN" --dry-run --layers 4)
expect layers4 "$out" "non-embedding params: 771789824 (7.72e+08)"
# the tiny config, tied: the LM head is the embedding, total counts it once
out=$("$BIN" --dry-run --config "$TINY")
echo "$out" | head -3
expect tiny "$out" "params per layer: 61632" "non-embedding params: 123328 (1.23e+05)" \
  "lm head params: 65536 (6.55e+04) (tied: the embedding)" "total params: 188864 (1.889e+05)"
# bad arguments: exit 2
for bad in "--layers 0" "--layers x" "--decode 1,,a" "--prefill 4x" "--bogus" "--train 4" "--config /nonexistent"; do
    "$BIN" --dry-run $bad >/dev/null 2>&1; rc=$?
    [ $rc = 2 ] || { echo "FAIL: '$bad' exited $rc, expected 2"; fail=1; }
done
# the whole bench on the CPU backend with the tiny config: every line comes out with a number
out=$("$BIN" --cpu --config "$TINY" --decode 1,4 --prompt 8 --steps 4 --warmup 1 --prefill 2x16 --train 2x16 \
      --train-iters 1 2>&1) || { echo "FAIL: --cpu run exited $?"; fail=1; }
echo "$out" | grep -E '^(decode|prefill|training)'
for want in "decode batch=1: " "decode batch=4: " "prefill batch=2 len=16: " "training: "; do
    grep -qE "^${want}[0-9.]+ tok/s" <<<"$out" || { echo "FAIL (cpu): no line '${want}<n> tok/s'"; fail=1; }
done
grep -q WARNING <<<"$out" && { echo "FAIL (cpu): a warning"; fail=1; }
[ $fail = 0 ] && echo "bench_gpu_dry: ok"
exit $fail
