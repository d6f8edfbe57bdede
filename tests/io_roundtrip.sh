#!/usr/bin/env bash
# `trustee init-model` round trip through our reader (io_load): with --tie and --untie, f32 and
# bf16: the tensor names/shapes the config implies are all there, and the parameter count printed by
# init-model, the one io_load counts, and one computed here from config.json (python stdlib) agree.
# Same seed -> identical bytes whatever the thread count; another seed -> other bytes; the CLI's
# refusals (non-empty dir, bad options) and --help. The ASan binary runs one small init too.
# Environment (tests/io.cmake): TRUSTEE, TRUSTEE_ASAN, IO_LOAD, SRC, BUILD.
set -uo pipefail
SRC=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
PY=/usr/bin/python3
command -v "$PY" >/dev/null || PY=python3
work=${BUILD:-/tmp}/io-roundtrip
rm -rf "$work" && mkdir -p "$work"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
export OMP_WAIT_POLICY=PASSIVE ASAN_OPTIONS=detect_leaks=1:abort_on_error=0

# parameter count of a Qwen3 config.json, computed here independently of trustee
count_params() {
  "$PY" - "$1/config.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
C, I, V, L = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
D = c["head_dim"]; Q = c["num_attention_heads"] * D; K = c["num_key_value_heads"] * D
layer = C + Q * C + 2 * K * C + C * Q + 2 * D + C + 3 * I * C
print(V * C * (1 if c["tie_word_embeddings"] else 2) + L * layer + C)
PYEOF
}

SMALL=(--hidden 64 --layers 2 --heads 4 --kv-heads 2 --head-dim 32 --intermediate 96)
for variant in "tie bf16" "untie f32" "untie bf16" "tie f32"; do
  set -- $variant
  dir=$work/$1-$2
  log=$("$TRUSTEE" init-model --out "$dir" "${SMALL[@]}" --$1 --dtype $2 --seed 7 2>&1) || { fail "init $variant: $log"; continue; }
  printed=$(echo "$log" | sed -n 's/^parameters: //p' | tr -d ,)
  want=$(count_params "$dir")
  loaded=$("$IO_LOAD" "$dir" 2>&1)
  echo "$variant: printed $printed, from config.json $want, io_load: $loaded"
  [ "$printed" = "$want" ] || fail "$variant: init-model printed $printed parameters, config.json implies $want"
  n_tensors=24; [ "$1" = tie ] || n_tensors=25
  [ "$loaded" = "ok: $n_tensors tensors, $want parameters" ] || fail "$variant: io_load said: $loaded"
  grep -q "\"tie_word_embeddings\": $([ $1 = tie ] && echo true || echo false)" "$dir/config.json" || fail "$variant: tie flag"
  grep -q "\"torch_dtype\": \"$([ $2 = bf16 ] && echo bfloat16 || echo float32)\"" "$dir/config.json" || fail "$variant: torch_dtype"
  for f in tokenizer.json tokenizer_config.json; do
    cmp -s "$dir/$f" "$SRC/model/data/qwen3-tokenizer/$f" || fail "$variant: $f differs from the shipped file"
  done
  for w in config.json model.safetensors tokenizer.json tokenizer_config.json; do
    echo "$log" | grep -qx "wrote $dir/$w.*" || fail "$variant: did not report writing $w"
  done
done

# determinism: thread count does not matter; the seed does
OMP_NUM_THREADS=1 "$TRUSTEE" init-model --out "$work/t1" "${SMALL[@]}" --seed 7 >/dev/null || fail "t1"
OMP_NUM_THREADS=2 "$TRUSTEE" init-model --out "$work/t2" "${SMALL[@]}" --seed 7 >/dev/null || fail "t2"
"$TRUSTEE" init-model --out "$work/s8" "${SMALL[@]}" --seed 8 >/dev/null || fail "s8"
cmp -s "$work/t1/model.safetensors" "$work/t2/model.safetensors" || fail "1 vs 2 threads: different bytes"
cmp -s "$work/t1/model.safetensors" "$work/tie-bf16/model.safetensors" || fail "rerun with the same seed: different bytes"
cmp -s "$work/t1/model.safetensors" "$work/s8/model.safetensors" && fail "seeds 7 and 8 gave the same bytes"
cmp -s "$work/t1/config.json" "$work/s8/config.json" || fail "config.json depends on the seed"

# the default model (a small CPU model): parameter count from its config
log=$("$TRUSTEE" init-model --out "$work/default" --seed 1 2>&1) || fail "default: $log"
printed=$(echo "$log" | sed -n 's/^parameters: //p' | tr -d ,)
want=$(count_params "$work/default")
echo "default: printed $printed, from config.json $want, io_load: $("$IO_LOAD" "$work/default" 2>&1)"
[ "$printed" = "$want" ] || fail "default: printed $printed, config.json implies $want"

# --rope-theta and --qk-norm: config.json's rope_theta, every q_norm / k_norm weight = W, the other
# norms 1 (safetensors read here with the python stdlib)
"$TRUSTEE" init-model --out "$work/qk" "${SMALL[@]}" --dtype f32 --seed 7 --rope-theta 10000 --qk-norm 2.5 >/dev/null \
  || fail "init --rope-theta --qk-norm"
qk=$("$PY" - "$work/qk" <<'PYEOF'
import json, struct, sys
d = sys.argv[1]
theta = json.load(open(d + "/config.json"))["rope_theta"]
b = open(d + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
qk = other = 0
for name, t in h.items():
    if name == "__metadata__" or len(t["shape"]) != 1: continue
    s, e = t["data_offsets"]
    vals = set(struct.unpack("<%df" % ((e - s) // 4), b[8 + n + s:8 + n + e]))
    want = 2.5 if (".q_norm." in name or ".k_norm." in name) else 1.0
    if vals != {want}: print("BAD", name, sorted(vals)[:3]); sys.exit(0)
    if want == 2.5: qk += 1
    else: other += 1
print(theta, qk, other)
PYEOF
)
echo "--rope-theta 10000 --qk-norm 2.5: rope_theta, q/k norms at 2.5, other norms at 1: $qk"
[ "$qk" = "10000 4 5" ] || [ "$qk" = "10000.0 4 5" ] || fail "--rope-theta / --qk-norm: got '$qk', want '10000 4 5'"

# refusals: one clear line, non-zero exit
expect_error() { # LABEL EXPECT CMD...
  local label=$1 expect=$2; shift 2
  local out; out=$("$@" 2>&1 >/dev/null); local rc=$?
  printf '%-16s rc=%d  %s\n' "$label" "$rc" "$(echo "$out" | head -n 1)"
  [ "$rc" -ne 0 ] || fail "$label: exit status 0"
  echo "$out" | grep -qF -- "$expect" || fail "$label: message lacks: $expect"
}
expect_error nonempty "is not empty (expected a new or empty directory; --force overwrites)" \
  "$TRUSTEE" init-model --out "$work/t1" "${SMALL[@]}" --seed 9
expect_error kv-heads "--heads 4 must be a multiple of --kv-heads 3" \
  "$TRUSTEE" init-model --out "$work/x" --kv-heads 3 --seed 1
expect_error head-dim "--head-dim must be even for RoPE, found 33" "$TRUSTEE" init-model --out "$work/x" --head-dim 33 --seed 1
expect_error hidden "option --hidden: expected a positive integer, found 0" "$TRUSTEE" init-model --out "$work/x" --hidden 0 --seed 1
expect_error dtype "option --dtype: expected f32 or bf16, found 'f16'" "$TRUSTEE" init-model --out "$work/x" --dtype f16 --seed 1
expect_error typo "unknown option --layer (did you mean --layers?)" "$TRUSTEE" init-model --out "$work/x" --layer 2 --seed 1
expect_error neg-seed "option --seed: expected an integer >= 0, found -3" "$TRUSTEE" init-model --out "$work/x" --seed -3
expect_error qk-norm "option --qk-norm: expected a number in (0, 100], found 0" "$TRUSTEE" init-model --out "$work/x" --qk-norm 0 --seed 1
expect_error rope-theta "option --rope-theta: expected a number > 1, found 1" "$TRUSTEE" init-model --out "$work/x" --rope-theta 1 --seed 1
expect_error no-seed "missing --seed S" "$TRUSTEE" init-model --out "$work/x"
expect_error no-out "missing --out DIR" "$TRUSTEE" init-model --seed 1
expect_error tie-untie "--tie and --untie contradict each other" "$TRUSTEE" init-model --out "$work/x" --tie --untie --seed 1
touch "$work/file"
expect_error out-is-file "exists and is not a directory" "$TRUSTEE" init-model --out "$work/file" --seed 1
[ ! -e "$work/x" ] || fail "a refused init-model created $work/x"
"$TRUSTEE" init-model --out "$work/t1" "${SMALL[@]}" --seed 8 --force >/dev/null || fail "--force did not overwrite"
cmp -s "$work/t1/model.safetensors" "$work/s8/model.safetensors" || fail "--force: not the seed-8 model"
"$TRUSTEE" init-model --help | grep -q "^usage: trustee init-model" || fail "--help"

# ASan + UBSan binary: one small init, no sanitizer report, same bytes as the normal build
"$TRUSTEE_ASAN" init-model --out "$work/asan" "${SMALL[@]}" --seed 7 >/dev/null 2>"$work/asan.err" || fail "asan init"
grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$work/asan.err" && { fail "asan report"; cat "$work/asan.err"; }
cmp -s "$work/asan/model.safetensors" "$work/t2/model.safetensors" || fail "ASan build wrote other bytes"

rm -rf "$work/default" # 84 MB
echo "io_roundtrip: $failures failures"
[ "$failures" -eq 0 ] || exit 1
rm -rf "$work" # kept only when something failed, for debugging
