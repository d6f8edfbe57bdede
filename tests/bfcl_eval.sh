#!/bin/bash
# `trustee eval --bench bfcl` on a 5-entry slice of every category in tests/data/bfcl with a random
# `trustee init-model` checkpoint (accuracy ~0: the outputs' counts and fields are checked, not the
# accuracy). Independent checks, in Python: each record's n_prompt equals the length of HF
# tokenizers' ids of the official Qwen3 template rendered by jinja2 (tools = the entry's functions,
# thinking off); ids are the first 5 of each data file, in order; the printed counts match the
# records; and `trustee check-bfcl` re-judging the JSONL agrees with every verdict.
# Also: an unknown category is refused; a malformed data line is reported with its line number.
set -euo pipefail
: "${TRUSTEE:?}" "${DATA:?}" "${BUILD:?}" "${SRC:?}" "${PYTHON:?}"
[ -x "$PYTHON" ] || { echo "no venv python ($PYTHON): skipped"; exit 77; }
W="$BUILD/bfcl-eval-test"
rm -rf "$W" && mkdir -p "$W/data"
tar -xzf "$DATA/bfcl/bfcl-v4-single-turn.tar.gz" -C "$W/data"
"$TRUSTEE" init-model --out "$W/model" --seed 3 --hidden 64 --layers 2 --heads 2 --kv-heads 1 \
    --head-dim 32 --intermediate 128 >/dev/null
fail=0
"$TRUSTEE" eval --model "$W/model" --bench bfcl --data "$W/data" --limit 5 --max-tokens 12 \
    --batch 4 --threads 2 --out "$W/out.jsonl" >"$W/stdout.txt"
cat "$W/stdout.txt"
"$PYTHON" - "$SRC" "$W" <<'PYEOF' || fail=1
import glob, json, os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "tests"))
from chat_template_check import render
from tokenizers import Tokenizer
src, w = sys.argv[1], sys.argv[2]
cfg = json.load(open(src + "/model/data/qwen3-tokenizer/tokenizer_config.json"))
tok = Tokenizer.from_file(src + "/model/data/qwen3-tokenizer/tokenizer.json")
recs = [json.loads(l) for l in open(w + "/out.jsonl", encoding="utf-8")]
cats = sorted(os.path.basename(p)[len("BFCL_v4_"):-len(".json")] for p in glob.glob(w + "/data/BFCL_v4_*.json"))
printed = {}
for line in open(w + "/stdout.txt"):
    if not line.startswith("#"):
        name, rest = line.split(": ", 1)
        n, _, v = rest.split(" ")[0], None, rest.split(", ")[1].split(" ")[0]
        printed[name] = (int(n), int(v))
bad = []
if sorted(printed) != cats:
    bad.append("printed categories %s, data has %s" % (sorted(printed), cats))
n_tok = 0
for cat in cats:
    entries = [json.loads(l) for l in open("%s/data/BFCL_v4_%s.json" % (w, cat), encoding="utf-8")][:5]
    mine = [r for r in recs if r["category"] == cat]
    if [r["id"] for r in mine] != [e["id"] for e in entries]:
        bad.append("%s: ids %s" % (cat, [r["id"] for r in mine]))
        continue
    if printed.get(cat) != (5, sum(r["valid"] for r in mine)):
        bad.append("%s: printed %s" % (cat, printed.get(cat)))
    for r, e in zip(mine, entries):
        if set(r) != {"id", "category", "valid", "error_type", "candidate", "text", "n_prompt",
                      "n_generated", "finish"}:
            bad.append("%s: fields %s" % (r["id"], sorted(r)))
            continue
        if r["valid"] != (r["error_type"] is None) or not isinstance(r["candidate"], list):
            bad.append("%s: valid/error_type/candidate" % r["id"])
        if not (1 <= r["n_generated"] <= 12) or r["finish"] not in ("stop", "length") or \
                (r["finish"] == "length") != (r["n_generated"] == 12):
            bad.append("%s: n_generated %d finish %s" % (r["id"], r["n_generated"], r["finish"]))
        msgs = [m for turn in e["question"] for m in turn]
        tools = [{"type": "function", "function": f} for f in e["function"]]
        text = render(cfg["chat_template"], {"messages": msgs, "tools": tools,
                                            "add_generation_prompt": True, "enable_thinking": False})
        n = len(tok.encode(text, add_special_tokens=False).ids)
        n_tok += n
        if n != r["n_prompt"]:
            bad.append("%s: n_prompt %d, HF render + tokenizers %d" % (r["id"], r["n_prompt"], n))
print("bfcl_eval: %d records, %d categories, %d prompt tokens cross-checked, %d problems"
      % (len(recs), len(cats), n_tok, len(bad)))
for b in bad[:10]:
    print("  " + b)
sys.exit(1 if bad or len(recs) != 5 * len(cats) else 0)
PYEOF

# the records are valid check-bfcl input and every verdict is reproduced
"$TRUSTEE" check-bfcl --data "$W/data" --candidates "$W/out.jsonl" >"$W/check.txt" ||
    { echo "FAIL: check-bfcl disagrees"; tail -3 "$W/check.txt"; fail=1; }
grep -q '^# total: 40 candidates, .* 0 malformed lines skipped, 0 disagree$' "$W/check.txt" ||
    { echo "FAIL: check-bfcl summary"; tail -1 "$W/check.txt"; fail=1; }

# bad input
if "$TRUSTEE" eval --model "$W/model" --bench bfcl --data "$W/data" --categories nope 2>"$W/err.txt"; then
    echo "FAIL: unknown category accepted"; fail=1
fi
grep -q "unknown category 'nope'" "$W/err.txt" || { echo "FAIL: message"; cat "$W/err.txt"; fail=1; }
f="$W/data/BFCL_v4_simple_python.json"
{ head -n 1 "$f"; echo '{"id": '; sed -n 2,3p "$f"; } >"$f.new" && mv "$f.new" "$f"
"$TRUSTEE" eval --model "$W/model" --bench bfcl --data "$W/data" --categories simple_python \
    --limit 3 --max-tokens 2 --threads 2 >"$W/bad.out" 2>"$W/bad.err"
grep -q 'BFCL_v4_simple_python.json:2: .*line skipped' "$W/bad.err" || { echo "FAIL: bad line"; cat "$W/bad.err"; fail=1; }
grep -q '^simple_python: 3 entries' "$W/bad.out" || { echo "FAIL: bad-line run"; cat "$W/bad.out"; fail=1; }
rm -rf "$W"
[ "$fail" = 0 ] && echo "bfcl_eval: OK"
exit "$fail"
