#!/usr/bin/env bash
# `trustee tokenize` end to end: exact bytes in (\r\n kept, no trailing newline added), ids out
# as in the reference data (tests/data/qwen3-tokenizer-tests, made by independent tokenizers),
# --decode back to the exact bytes, --tokenizer DIR, --help, and clear errors for bad input.
set -uo pipefail
SRC=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
DATA=${DATA:-$SRC/tests/data}
TRUSTEE=${TRUSTEE:?set TRUSTEE to the trustee binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0 checks=0
check() { # check NAME CONDITION-STATUS
  checks=$((checks + 1))
  if [ "$2" != 0 ]; then echo "FAIL: $1"; fail=$((fail + 1)); fi
}

# cut the reference cases into files: case text -> $tmp/N.txt, ids -> $tmp/N.ids (Debian python)
/usr/bin/python3 - "$DATA/qwen3-tokenizer-tests/qwen3-expected.jsonl" "$tmp" <<'PY'
import json, sys
names = {"empty", "ws_crlf", "accents_nfd_input", "chat_full"}
for line in open(sys.argv[1], encoding="utf-8"):
    d = json.loads(line)
    if d["name"] in names:
        open(f"{sys.argv[2]}/{d['name']}.txt", "wb").write(d["text"].encode("utf-8"))
        open(f"{sys.argv[2]}/{d['name']}.ids", "w").write(" ".join(map(str, d["ids"])) + "\n")
        open(f"{sys.argv[2]}/{d['name']}.dec", "wb").write(d["decoded"].encode("utf-8"))
PY
n=0
for f in "$tmp"/*.txt; do
  name=$(basename "$f" .txt)
  "$TRUSTEE" tokenize < "$f" > "$tmp/got.ids"
  cmp -s "$tmp/got.ids" "$tmp/$name.ids"; check "encode $name: got '$(cat "$tmp/got.ids")', want '$(cat "$tmp/$name.ids")'" $?
  "$TRUSTEE" tokenize --decode < "$tmp/$name.ids" > "$tmp/got.txt"
  cmp -s "$tmp/got.txt" "$tmp/$name.dec"; check "decode $name" $?
  n=$((n + 1))
done
# --tokenizer DIR gives the same ids as the embedded tokenizer
"$TRUSTEE" tokenize --tokenizer "$SRC/model/data/qwen3-tokenizer" < "$tmp/chat_full.txt" > "$tmp/got.ids"
cmp -s "$tmp/got.ids" "$tmp/chat_full.ids"; check "--tokenizer DIR" $?
# --help documents the options
"$TRUSTEE" tokenize --help > "$tmp/help" 2>&1; check "--help exits 0" $?
grep -q -- "--decode" "$tmp/help" && grep -q -- "--tokenizer DIR" "$tmp/help"; check "--help text" $?
# bad input: exit 1 and a message that says what is wrong
expect_error() { # expect_error NAME PATTERN ARGS... (stdin from $tmp/in)
  local name=$1 pat=$2; shift 2
  "$TRUSTEE" tokenize "$@" < "$tmp/in" > /dev/null 2> "$tmp/err"
  local rc=$?
  [ "$rc" = 1 ] && grep -q -- "$pat" "$tmp/err"; check "$name: rc $rc, stderr '$(cat "$tmp/err")'" $?
}
printf '9707 abc 1879' > "$tmp/in"; expect_error "non-integer id" "'abc' is not an integer token id" --decode
printf '9707 151669' > "$tmp/in"; expect_error "id out of range" "'151669' is out of range" --decode
printf -- '-1' > "$tmp/in"; expect_error "negative id" "out of range" --decode
printf 'x' > "$tmp/in"; expect_error "unknown option" "did you mean --decode" --decod
expect_error "missing dir" "/nonexistent/tokenizer.json: cannot open" --tokenizer /nonexistent
echo "test_tokenize_cmd: $n reference cases encoded and decoded through trustee tokenize, $checks checks, $fail failed"
[ "$fail" = 0 ]
