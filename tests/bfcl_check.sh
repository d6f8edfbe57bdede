#!/bin/bash
# `trustee check-bfcl` must reproduce every verdict (valid / invalid + error type) that BFCL's own
# checker gave in tests/data/bfcl (verdicts_*.jsonl, data unpacked from the tarball). The
# comparison is done here in Python from the verdict files, not only by check-bfcl's own count.
# Also: a malformed candidate line is reported with its line number and skipped.
set -euo pipefail
: "${TRUSTEE:?}" "${DATA:?}" "${BUILD:?}"
PY=/usr/bin/python3
[ -x "$PY" ] || PY="${PYTHON:?}"
D="$BUILD/bfcl-test-data"
rm -rf "$D" && mkdir -p "$D"
tar -xzf "$DATA/bfcl/bfcl-v4-single-turn.tar.gz" -C "$D"

fail=0
for f in "$D"/verdicts_*.jsonl; do
    out="$D/out_$(basename "$f" .jsonl).txt"
    rc=0
    "$TRUSTEE" check-bfcl --data "$D" --candidates "$f" >"$out" 2>"$out.err" || rc=$?
    "$PY" - "$f" "$out" "$rc" <<'PYEOF' || fail=1
import json, sys
vpath, opath, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
want = {}
for i, line in enumerate(open(vpath, encoding="utf-8"), 1):
    if line.strip():
        d = json.loads(line)
        want[i] = (d["id"], "valid" if d["valid"] else "invalid " + d["error_type"])
got = {}
for line in open(opath, encoding="utf-8"):
    if line.startswith("#"):
        continue
    n, id_, verdict = line.rstrip("\n").split(" ", 2)
    got[int(n)] = (id_, verdict)
bad = [(n, w, got.get(n)) for n, w in want.items() if got.get(n) != w]
nvalid = sum(1 for w in want.values() if w[1] == "valid")
name = vpath.rsplit("/", 1)[-1]
print(f"{name}: {len(want)} verdicts ({nvalid} valid), {len(want) - len(bad)} reproduced, "
      f"{len(bad)} mismatched, check-bfcl exit {rc}")
for b in bad[:10]:
    print("  line %d: expected %s, got %s" % b)
sys.exit(1 if bad or len(got) != len(want) or rc != 0 else 0)
PYEOF
done

# malformed lines: reported with their line numbers, skipped; the good lines are still judged
bad="$D/bad.jsonl"
{
    head -n 1 "$D/verdicts_simple_python.jsonl"
    echo '{"id": "simple_python_0", "category": "simple_python", "candidate": [}'
    echo '{"id": "simple_python_0", "category": "no_such_category", "candidate": []}'
    echo '{"id": "nope_1", "category": "simple_python", "candidate": []}'
    head -n 2 "$D/verdicts_simple_python.jsonl" | tail -n 1
} >"$bad"
rc=0
"$TRUSTEE" check-bfcl --data "$D" --candidates "$bad" >"$D/bad.out" 2>"$D/bad.err" || rc=$?
cat "$D/bad.err"
for n in 2 3 4; do
    grep -q "bad.jsonl:$n: .*line skipped" "$D/bad.err" || { echo "FAIL: line $n not reported"; fail=1; }
done
grep -q '^1 simple_python_0 valid$' "$D/bad.out" || { echo "FAIL: line 1 not judged"; fail=1; }
grep -q '^5 simple_python_0 invalid simple_function_checker:wrong_func_name$' "$D/bad.out" ||
    { echo "FAIL: line 5 not judged"; fail=1; }
grep -q '3 malformed lines skipped, 0 disagree' "$D/bad.out" || { echo "FAIL: summary"; fail=1; }
[ "$rc" = 0 ] || { echo "FAIL: exit $rc on malformed lines"; fail=1; }
rm -rf "$D"
[ "$fail" = 0 ] && echo "bfcl_check: OK"
exit "$fail"
