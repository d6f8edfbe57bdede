#!/usr/bin/env bash
# `trustee plan-memory` end to end: exit codes (0 fits, 2 does not, 1 bad settings), the key lines,
# and numbers checked against hand computations done here with awk (not by the code under test):
#   Qwen3-8B params P = 2*151936*4096 + 36*(2*4096*4096 + 2*1024*4096 + 3*12288*4096 + 2*4096 + 2*128) + 4096
#   KV bytes per token (bf16) = 2 * 36 layers * 8 KV heads * 128 head dim * 2 bytes
set -euo pipefail
SRC=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
DATA=${DATA:-$SRC/tests/data}
TRUSTEE=${TRUSTEE:?set TRUSTEE to the trustee binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_plan_memory_cli: FAIL: $*"; exit 1; }

P=$(awk 'BEGIN { printf "%.0f", 2*151936*4096 + 36*(2*4096*4096 + 2*1024*4096 + 3*12288*4096 + 2*4096 + 2*128) + 4096 }')
[ "$P" = 8190735360 ] || fail "hand count $P"
gib() { awk -v b="$1" 'BEGIN { printf "%.3f", b / 1073741824 }'; }
w_gib=$(gib $((P * 2)))       # bf16 weights
m_gib=$(gib $((P * 4)))       # fp32 master / one Adam moment / fp32 grads
s_gib=$(gib $((P * 4 / 8)))   # the same over 8 learners
kv_tok=$((2 * 36 * 8 * 128 * 2))

# --help, and the command is listed
"$TRUSTEE" plan-memory --help | grep -q -- '--gpu-gib' || fail "--help"
"$TRUSTEE" --help | grep -q '^  plan-memory ' || fail "not in the command list"

# 1. the 8B learner alone with full fp32 state: does not fit 80 GiB -> exit 2 and a clear line
set +e
"$TRUSTEE" plan-memory --preset qwen3-8b --role learner --gpu-gib 80 > "$tmp/l1.out" 2> "$tmp/l1.err"
rc=$?
set -e
[ $rc = 2 ] || fail "non-fitting learner: exit $rc, expected 2"
grep -Eq '^trustee plan-memory: needs [0-9.]+ GiB of 80 GiB: ' "$tmp/l1.err" || fail "no 'needs X GiB of 80 GiB' line: $(cat "$tmp/l1.err")"
grep -q 'DOES NOT FIT' "$tmp/l1.out" || fail "no DOES NOT FIT"
grep -Eq "^weights +P x w +$w_gib " "$tmp/l1.out" || fail "weights line != $w_gib GiB"
for line in "master weights" "adam m" "adam v" "grads"; do
  grep -Eq "^$line +P x .* +$m_gib " "$tmp/l1.out" || fail "$line != $m_gib GiB"
done
grep -q "P = $P params" "$tmp/l1.out" || fail "param count line"
# the total is at least weights + master + m + v + grads (hand)
need=$(sed -n 's/.*needs \([0-9.]*\) GiB.*/\1/p' "$tmp/l1.err")
awk -v n="$need" -v p="$P" 'BEGIN { exit !(n >= p * 18 / 1073741824 - 0.05) }' || fail "needs $need < hand minimum"

# 2. 8 learners, ZeRO-2 (the default with --learners > 1): fits -> exit 0
"$TRUSTEE" plan-memory --preset qwen3-8b --role learner --gpu-gib 80 --learners 8 --micro-tokens 16384 \
  --checkpointing 1 > "$tmp/l8.out" || fail "8 learners: exit $?"
grep -q '^fits$' "$tmp/l8.out" || fail "8 learners: no 'fits'"
grep -Eq "^adam m +P x 4 / s1 +$s_gib " "$tmp/l8.out" || fail "adam m over 8 != $s_gib"
grep -Eq "^grads +P x g / s2 +$s_gib " "$tmp/l8.out" || fail "grads over 8 != $s_gib"
grep -q 'ZeRO-2 (s1=8 s2=8)' "$tmp/l8.out" || fail "ZeRO-2 settings line"
grep -q 'largest micro-batch that fits: ' "$tmp/l8.out" || fail "largest micro-batch line"

# 3. rollout actor: largest KV; and a KV cache that cannot fit
"$TRUSTEE" plan-memory --preset qwen3-8b --role rollout --gpu-gib 80 > "$tmp/r.out" || fail "rollout: exit $?"
grep -q "KV $kv_tok bytes/token" "$tmp/r.out" || fail "KV bytes per token != $kv_tok"
grep -Eq '^largest KV cache that fits: [0-9]+ tokens .* sequences of 8192 tokens$' "$tmp/r.out" || fail "KV line"
set +e
"$TRUSTEE" plan-memory --preset qwen3-8b --role sim --gpu-gib 80 --kv-tokens 1000000 > "$tmp/s.out" 2> "$tmp/s.err"
rc=$?
set -e
[ $rc = 2 ] || fail "1M KV tokens: exit $rc, expected 2"
kv_gib=$(gib $((1000000 * kv_tok)))
grep -q "KV cache ${kv_gib} GiB\|KV cache $(awk -v g="$kv_gib" 'BEGIN{printf "%.1f", g}') GiB" "$tmp/s.err" || \
  fail "the shortfall should name the KV cache (${kv_gib} GiB): $(cat "$tmp/s.err")"
grep -Eq "^KV cache +2 x L x Hkv x D x T x kv +$kv_gib " "$tmp/s.out" || fail "KV line != $kv_gib GiB"

# 4. a config file, and bad settings (exit 1)
"$TRUSTEE" plan-memory --config "$DATA/qwen3-tiny/config.json" --role learner --gpu-gib 1 > "$tmp/t.out" || fail "tiny config"
grep -q 'V=1024' "$tmp/t.out" || fail "tiny config not read"
set +e
"$TRUSTEE" plan-memory --role trainer 2> "$tmp/e1.err"; rc1=$?
"$TRUSTEE" plan-memory --gpu-gibs 80 2> "$tmp/e2.err"; rc2=$?
"$TRUSTEE" plan-memory --checkpointing 2 2> /dev/null; rc3=$?
set -e
[ $rc1 = 1 ] && grep -q 'learner, rollout or sim' "$tmp/e1.err" || fail "bad role: exit $rc1"
[ $rc2 = 1 ] && grep -q 'did you mean --gpu-gib' "$tmp/e2.err" || fail "typo: exit $rc2"
[ $rc3 = 1 ] || fail "bad checkpointing: exit $rc3"
echo "test_plan_memory_cli: ok (P=$P, weights $w_gib GiB, KV $kv_tok bytes/token)"
