#!/bin/bash
# BFCL v4 summary arithmetic of `trustee eval --bench bfcl --results` (docs/bfcl.md) on a hand-made
# per-category table. Expected values worked out by hand:
#   non-live    = mean(3/4, 1/2, 5/5, 0/4)                      = 2.25/4       = 0.5625
#   live        = (3 + 5 + 1 + 0) / (6 + 10 + 2 + 2)            = 9/20         = 0.4500
#                 (the unweighted mean would be 0.375: the test tells the two apart)
#   irrelevance = mean(2/3, 1/4)                                 = 11/24        = 0.4583
#   overall     = (0.5625 + 0.45 + 11/24) / 3                    = 0.49028 -> 0.4903
# and, as a second opinion, by a separate Python implementation of the documented rule. Also: a
# table without live_parallel prints live and overall as N/A; a malformed line is reported with its
# line number and skipped.
set -euo pipefail
: "${TRUSTEE:?}" "${BUILD:?}"
W="$BUILD/bfcl-summary-test"
rm -rf "$W" && mkdir -p "$W"
python=/usr/bin/python3
fail=0
# category n valid
table="simple_python 4 3
multiple 2 1
parallel 5 5
parallel_multiple 4 0
irrelevance 3 2
live_simple 6 3
live_multiple 10 5
live_parallel 2 1
live_parallel_multiple 2 0
live_irrelevance 4 1"
mk() { # the --out records of a table on stdin
  while read -r c n v; do
    for ((i = 0; i < n; i++)); do
      if ((i < v)); then ok=true; else ok=false; fi
      printf '{"id": "%s_%d", "category": "%s", "valid": %s, "error_type": null}\n' "$c" "$i" "$c" "$ok"
    done
  done
}
echo "$table" | mk >"$W/all.jsonl"
echo '{"id": "x", "valid": true}' >>"$W/all.jsonl" # line 43: no category
"$TRUSTEE" eval --bench bfcl --results "$W/all.jsonl" >"$W/out.txt" 2>"$W/err.txt"
cat "$W/out.txt" "$W/err.txt"
want() { grep -q -- "$1" "$W/out.txt" || { echo "FAIL: expected a line matching '$1'"; fail=1; }; }
want '^simple_python: 4 entries, 3 valid, accuracy 0.7500$'
want '^live_parallel: 2 entries, 1 valid, accuracy 0.5000$'
want '^# total: 42 entries, 21 valid$'
want '^# non-live: 0.5625 '
want '^# live: 0.4500 '
want '^# irrelevance: 0.4583 '
want '^# overall: 0.4903 '
grep -q 'all.jsonl:43: expected an object' "$W/err.txt" || { echo "FAIL: malformed line 43 not reported"; fail=1; }

# an independent implementation of docs/bfcl.md's rule
"$python" - "$W/out.txt" "$table" <<'PYEOF' || fail=1
import sys
out, table = open(sys.argv[1]).read(), sys.argv[2]
t = {c: (int(n), int(v)) for c, n, v in (l.split() for l in table.splitlines())}
acc = {c: v / n for c, (n, v) in t.items()}
simple = sum(acc[c] for c in ["simple_python"]) / 1  # java / javascript are not evaluated here
non_live = (simple + acc["multiple"] + acc["parallel"] + acc["parallel_multiple"]) / 4
live_c = ["live_simple", "live_multiple", "live_parallel", "live_parallel_multiple"]
live = sum(t[c][1] for c in live_c) / sum(t[c][0] for c in live_c)
irr = (acc["irrelevance"] + acc["live_irrelevance"]) / 2
w = [10, 10, 10]  # BFCL v4's weights for the single-turn segments (multi-turn 30, agentic 40 left out)
overall = (w[0] * non_live + w[1] * live + w[2] * irr) / sum(w)
got = {}
for line in out.splitlines():
    if line.startswith("# ") and ": " in line and line[2:].split(":")[0] in ("non-live", "live", "irrelevance", "overall"):
        name, rest = line[2:].split(": ", 1)
        got[name] = float(rest.split()[0])
bad = [(k, got.get(k), v) for k, v in [("non-live", non_live), ("live", live), ("irrelevance", irr), ("overall", overall)]
       if k not in got or abs(got[k] - v) > 5e-5]
print("python reference:", {"non-live": non_live, "live": live, "irrelevance": irr, "overall": overall})
if bad:
    print("FAIL: differs from the Python reference (name, trustee, python):", bad)
    sys.exit(1)
PYEOF

# a missing live category: live and overall are N/A, non-live and irrelevance still computed
echo "$table" | grep -v '^live_parallel ' | mk >"$W/some.jsonl"
"$TRUSTEE" eval --bench bfcl --results "$W/some.jsonl" >"$W/some.txt"
grep -q '^# live: N/A (live_parallel not evaluated' "$W/some.txt" || { echo "FAIL: live should be N/A"; fail=1; }
grep -q '^# overall: N/A' "$W/some.txt" || { echo "FAIL: overall should be N/A"; fail=1; }
grep -q '^# non-live: 0.5625 ' "$W/some.txt" || { echo "FAIL: non-live with live_parallel missing"; fail=1; }
# a missing results file is an error
if "$TRUSTEE" eval --bench bfcl --results "$W/nope.jsonl" 2>/dev/null; then echo "FAIL: missing file accepted"; fail=1; fi
[ "$fail" = 0 ] && echo "bfcl summary: ok"
exit "$fail"
