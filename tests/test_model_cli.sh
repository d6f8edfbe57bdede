#!/usr/bin/env bash
# The model CLIs end to end: `trustee logits` against the independent reference logits of
# tests/data/qwen3-tiny (1e-4 relative, all 4 cases, BF16 weights), its error for an id outside the
# vocabulary; `trustee generate` on a full-vocabulary model made by `trustee init-model` (greedy
# output deterministic, --stop ends it early, speeds on stderr); `trustee bench-generate`'s line.
set -euo pipefail
SRC=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
DATA=${DATA:-$SRC/tests/data}
TRUSTEE=${TRUSTEE:?set TRUSTEE to the trustee binary}
PY=${PYTHON:-$SRC/.venv/bin/python}
if ! "$PY" -c 'import numpy' 2>/dev/null; then
  echo "test_model_cli: SKIP: $PY cannot import numpy (scripts/install-deps.sh --tests makes the venv)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tiny=$DATA/qwen3-tiny

# logits: every case of expected.json
"$PY" -c 'import json,sys; [print(" ".join(map(str,c["input_ids"]))) for c in json.load(open(sys.argv[1]))["cases"]]' \
  "$tiny/expected.json" > "$tmp/cases.txt"
i=0
while read -r ids; do
  "$TRUSTEE" logits --model "$tiny" --ids "$ids" --threads 1 > "$tmp/logits.$i.txt"
  i=$((i + 1))
done < "$tmp/cases.txt"
"$PY" - "$tiny/expected.json" "$tmp" <<'PY'
import json, sys, numpy as np
cases = json.load(open(sys.argv[1]))["cases"]
for i, c in enumerate(cases):
    got = np.array(open(f"{sys.argv[2]}/logits.{i}.txt").read().split(), dtype=np.float64)
    want = np.array(c["logits_last"], dtype=np.float64)
    assert got.shape == want.shape, (c["name"], got.shape, want.shape)
    rel = np.abs(got - want).max() / np.abs(want).max()
    print(f"logits CLI {c['name']:12s} rel diff {rel:.3g}, argmax {got.argmax()} (want {want.argmax()})")
    assert rel < 1e-4 and got.argmax() == want.argmax(), c["name"]
PY

# an id outside the vocabulary is an error naming the id and the vocabulary size
if "$TRUSTEE" logits --model "$tiny" --ids "5 1024" > /dev/null 2> "$tmp/err.txt"; then
  echo "FAIL: id 1024 accepted"; exit 1
fi
grep -q "1024 is outside the vocabulary (size 1024)" "$tmp/err.txt" || { cat "$tmp/err.txt"; echo "FAIL: message"; exit 1; }

# generate on a full-vocabulary model (the built-in Qwen3 tokenizer)
"$TRUSTEE" init-model --out "$tmp/m" --seed 5 --hidden 64 --layers 2 --heads 2 --kv-heads 1 \
  --head-dim 32 --intermediate 128 > /dev/null
"$TRUSTEE" generate --model "$tmp/m" --prompt "Hello, world" --max-tokens 12 --threads 2 \
  > "$tmp/g1.txt" 2> "$tmp/g1.err"
"$TRUSTEE" generate --model "$tmp/m" --prompt "Hello, world" --max-tokens 12 --threads 1 \
  > "$tmp/g2.txt" 2> /dev/null
grep -q "prefill: .* tok/s.*decode: 11 tokens" "$tmp/g1.err" || { cat "$tmp/g1.err"; echo "FAIL: speeds"; exit 1; }
cmp -s "$tmp/g1.txt" "$tmp/g2.txt" || { echo "FAIL: greedy output differs between 2 and 1 threads"; exit 1; }
[ "$(wc -c < "$tmp/g1.txt")" -gt 1 ] || { echo "FAIL: empty output"; exit 1; }
# --stop with a piece of the greedy text: the output stops at the token that completes it
"$PY" - "$tmp/g1.txt" "$tmp/stop.txt" <<'PY'
import sys
t = open(sys.argv[1], encoding="utf-8").read().rstrip("\n")
open(sys.argv[2], "w", encoding="utf-8").write(t[2:4])
PY
"$TRUSTEE" generate --model "$tmp/m" --prompt "Hello, world" --max-tokens 12 --stop "$(cat "$tmp/stop.txt")" \
  > "$tmp/g3.txt" 2> /dev/null
"$PY" - "$tmp/g1.txt" "$tmp/g3.txt" "$tmp/stop.txt" <<'PY'
import sys
full, short, stop = (open(p, encoding="utf-8").read() for p in sys.argv[1:4])
full, short = full.rstrip("\n"), short.rstrip("\n")
print(f"generate: {len(full)} chars greedy; with --stop {stop!r}: {len(short)} chars")
assert full.startswith(short) and stop in short and len(short) < len(full), (full, short, stop)
PY
# sampling: the same seed gives the same text
a=$("$TRUSTEE" generate --model "$tmp/m" --prompt "Hi" --max-tokens 10 --temperature 1 --top-p 0.9 --top-k 50 --seed 7 2>/dev/null)
b=$("$TRUSTEE" generate --model "$tmp/m" --prompt "Hi" --max-tokens 10 --temperature 1 --top-p 0.9 --top-k 50 --seed 7 2>/dev/null)
[ "$a" = "$b" ] || { echo "FAIL: same seed, different samples"; exit 1; }

# --chat: the reference tools conversation (HF template render) gives the same prompt as its
# rendered text passed raw, so the same greedy reply; malformed chats are clear errors
"$PY" - "$DATA/qwen3-tokenizer-tests/qwen3-chat-template-expected.jsonl" "$tmp" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    d = json.loads(line)
    if d["name"] == "tools_call_and_response":
        json.dump(d["context"], open(sys.argv[2] + "/chat.json", "w"))
        open(sys.argv[2] + "/rendered.txt", "w", encoding="utf-8").write(d["rendered"])
        open(sys.argv[2] + "/n_ids.txt", "w").write(str(len(d["ids"])))
PY
"$TRUSTEE" generate --model "$tmp/m" --chat "$tmp/chat.json" --max-tokens 8 > "$tmp/c1.txt" 2> "$tmp/c1.err"
rendered=$(cat "$tmp/rendered.txt"; printf x); rendered=${rendered%x} # keep the final newline
"$TRUSTEE" generate --model "$tmp/m" --prompt "$rendered" --max-tokens 8 > "$tmp/c2.txt" 2> /dev/null
grep -q "^prefill: $(cat "$tmp/n_ids.txt") tokens" "$tmp/c1.err" || { cat "$tmp/c1.err"; echo "FAIL: chat prompt length"; exit 1; }
grep -q "^tool calls in the reply: " "$tmp/c1.err" || { cat "$tmp/c1.err"; echo "FAIL: no tool-call report"; exit 1; }
cmp -s "$tmp/c1.txt" "$tmp/c2.txt" || { echo "FAIL: --chat and the rendered --prompt differ"; exit 1; }
echo "generate --chat: prompt of $(cat "$tmp/n_ids.txt") ids, same greedy reply as the HF-rendered text"
echo '{"messages": [{"role": "robot", "content": "x"}]}' > "$tmp/bad.json"
if "$TRUSTEE" generate --model "$tmp/m" --chat "$tmp/bad.json" > /dev/null 2> "$tmp/bad.err"; then
  echo "FAIL: bad chat accepted"; exit 1
fi
grep -q 'bad.json: messages\[0\]: unknown role "robot"' "$tmp/bad.err" || { cat "$tmp/bad.err"; echo "FAIL: bad chat message"; exit 1; }

# bench-generate prints its one line
line=$("$TRUSTEE" bench-generate --model "$tmp/m" --batch 3 --prompt-len 5 --gen-len 4 --seed 1)
echo "$line"
[[ "$line" =~ ^bench-generate\ batch=3\ prompt_len=5\ gen_len=4\ prefill_tok_s=[0-9.]+\ decode_tok_s=[0-9.]+$ ]] \
  || { echo "FAIL: bench-generate line"; exit 1; }
echo "test_model_cli: OK"
