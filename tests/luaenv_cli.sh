#!/bin/bash
# trustee env list / sample / play (piped stdin) / oracle, for every shipped environment.
# Env: TRUSTEE (binary). Python: /usr/bin/python3 (standard library only).
set -euo pipefail
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PY=/usr/bin/python3

"$TRUSTEE" env list > "$T/list.txt"
grep -q '^airline: ' "$T/list.txt"
grep -q 'tools (9): get_user get_reservation search_flights' "$T/list.txt"
grep -q 'task families (6):' "$T/list.txt"
envs=$(grep -o '^[a-z_]*:' "$T/list.txt" | tr -d :)
echo "envs: $envs"

for env in $envs; do
  # sample: JSON with the contract's fields, the same twice
  "$TRUSTEE" env sample --env "$env" --difficulty 50 --seed 7 > "$T/a.json"
  "$TRUSTEE" env sample --env "$env" --difficulty 50 --seed 7 > "$T/b.json"
  cmp "$T/a.json" "$T/b.json"
  # play: feed the oracle's steps as a person would type them; then a do-nothing session
  "$PY" - "$T/a.json" "$T/play.txt" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
for k in ["env", "seed", "family", "query", "system", "facts", "state", "tools", "available", "checks", "oracle", "aspects"]:
    assert k in t, k
lines = []
for s in t["oracle"]:
    if "calls" in s:
        lines += [json.dumps({"name": c["name"], "arguments": c["args"]}) for c in s["calls"]]
    else:
        lines.append(s.get("say") or s["text"])
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
EOF
  "$TRUSTEE" env play --env "$env" --seed 7 --difficulty 50 < "$T/play.txt" > "$T/play.out"
  tail -1 "$T/play.out"
  grep -q 'reward r = 2s - 1 = 1.0000$' "$T/play.out"
  if grep -q '^check FAIL' "$T/play.out"; then echo "a check failed"; exit 1; fi
  echo "ok" | "$TRUSTEE" env play --env "$env" --seed 7 --difficulty 50 > "$T/nothing.out"
  grep -q 'user> \[end\]' "$T/nothing.out"
  grep -q 'reward r = 2s - 1 = -1.0000$' "$T/nothing.out"
  # a malformed tool call line is reported, not fatal
  printf '{"arguments": {}}\n{bad json\nok\n' | "$TRUSTEE" env play --env "$env" --seed 7 > "$T/bad.out"
  grep -q 'not a tool call' "$T/bad.out"

  # oracle JSONL: chat form (messages + tools), every assistant call with an arguments object
  "$TRUSTEE" env oracle --env "$env" --n 12 --out "$T/o.jsonl" 2> "$T/o.err"
  grep -q 'mean oracle score 1.0000' "$T/o.err"
  "$PY" - "$T/o.jsonl" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 12, len(lines)
for l in lines:
    d = json.loads(l)
    names = {t["function"]["name"] for t in d["tools"]}
    m = d["messages"]
    assert m[0]["role"] == "system" and m[1]["role"] == "user" and m[-1]["role"] == "assistant"
    for x in m:
        assert x["role"] in ("system", "user", "assistant", "tool")
        for c in x.get("tool_calls", []):
            assert c["function"]["name"] in names and isinstance(c["function"]["arguments"], dict)
        if x["role"] == "tool":
            r = json.loads(x["content"])
            assert r["success"] in (True, False)
EOF
done

# errors: missing / unknown env, bad difficulty, option typos
! "$TRUSTEE" env sample --difficulty 5 2> "$T/e1" && grep -q -- '--env NAME is required' "$T/e1"
! "$TRUSTEE" env sample --env nosuch 2> "$T/e2" && grep -q "unknown environment 'nosuch' (shipped: .*airline" "$T/e2"
! "$TRUSTEE" env sample --env airline --difficulty 101 2> "$T/e3" && grep -q 'difficulty must be in \[1, 100\]' "$T/e3"
! "$TRUSTEE" env sample --env airline --sed 1 2> "$T/e4" && grep -q 'sed' "$T/e4"
cat "$T/e1" "$T/e2" "$T/e3" "$T/e4"
echo "luaenv_cli: ok"
