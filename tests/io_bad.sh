#!/usr/bin/env bash
# Bad inputs for the model loaders: every broken checkpoint made by io_make_bad.py (from the good
# tests/data/qwen3-tiny) must give ONE error line that names the file and contains the expected
# text, exit status 1, and no sanitizer report. Runs io_load (config + safetensors + tokenizer
# loaders) built with ASan + UBSan, and, once `trustee logits` is implemented, the ASan trustee
# binary's `logits --model DIR --ids "1 2 3"` on the same cases.
# Environment (set by tests/io.cmake): IO_LOAD_ASAN, TRUSTEE_ASAN, DATA, SRC, BUILD.
set -uo pipefail
SRC=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
DATA=${DATA:-$SRC/tests/data}
PY=/usr/bin/python3
command -v "$PY" >/dev/null || PY=python3
work=${BUILD:-/tmp}/io-bad
rm -rf "$work" && mkdir -p "$work"
"$PY" "$SRC/tests/io_make_bad.py" "$DATA/qwen3-tiny" "$SRC/model/data/qwen3-tokenizer/tokenizer.json" "$work" || exit 1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# run_case LABEL EXPECT CMD...: exit 1, one stderr line containing EXPECT, no sanitizer output
run_case() {
  local label=$1 expect=$2; shift 2
  local err=$work/stderr.txt
  "$@" >/dev/null 2>"$err"
  local rc=$?
  local lines; lines=$(wc -l <"$err")
  printf '%-28s rc=%d  %s\n' "$label" "$rc" "$(head -c 400 "$err" | head -n 1)"
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error|UndefinedBehavior' "$err"; then
    fail "$label: sanitizer report:"; cat "$err"; return
  fi
  [ "$rc" -eq 1 ] || fail "$label: exit status $rc (expected 1)"
  [ "$lines" -eq 1 ] || { fail "$label: $lines stderr lines (expected 1)"; cat "$err"; }
  grep -qF -- "$expect" "$err" || fail "$label: message lacks: $expect"
}

# the good model loads (sanity check of the harness itself), with and without a tokenizer
good=$work/good
mkdir -p "$good" && cp "$DATA/qwen3-tiny/config.json" "$DATA/qwen3-tiny/model.safetensors" "$good/"
out=$("$IO_LOAD_ASAN" "$good" 2>&1); echo "good                         $out"
[ "$out" = "ok: 24 tensors, 188864 parameters" ] || fail "good model: $out"
cp "$SRC/model/data/qwen3-tokenizer/tokenizer.json" "$good/"
out=$("$IO_LOAD_ASAN" "$good" 2>&1); echo "good + tokenizer.json        $out"
[ "$out" = "ok: 24 tensors, 188864 parameters" ] || fail "good model with tokenizer: $out"

n=0
while IFS=$'\t' read -r name expect; do
  run_case "$name" "$expect" "$IO_LOAD_ASAN" "$work/$name"
  # every message names the file it is about
  grep -qE '(config\.json|tokenizer\.json|\.safetensors|index\.json)|'"$name"'' "$work/stderr.txt" ||
    fail "$name: message does not name a file"
  n=$((n + 1))
done <"$work/cases.tsv"

# the CLI, once `trustee logits` is no longer a placeholder
if grep -q "placeholder until this subcommand lands" "$SRC/cmd/logits.c"; then
  echo "(trustee logits is still a placeholder: CLI cases not run)"
else
  while IFS=$'\t' read -r name expect; do
    case $name in tok_*) continue ;; esac # logits takes ids: it need not read tokenizer.json
    run_case "logits:$name" "$expect" "$TRUSTEE_ASAN" logits --model "$work/$name" --ids "1 2 3"
    n=$((n + 1))
  done <"$work/cases.tsv"
fi

echo "io_bad: $n cases, $failures failures"
[ "$failures" -eq 0 ] || exit 1
rm -rf "$work" # kept only when something failed, for debugging
