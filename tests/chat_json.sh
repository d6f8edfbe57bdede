#!/bin/bash
# chat_json_dumps against Python's json.dumps(ensure_ascii=False) (the template's tojson).
# usage: chat_json.sh CHAT_TOOL   (SRC from trustee_sh_test)
set -euo pipefail
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "no $PY: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" "$SRC/tests/chat_json_check.py" gen "$tmp/in.jsonl" "$tmp/want.txt"
"$1" json "$tmp/in.jsonl" > "$tmp/got.txt"
"$PY" "$SRC/tests/chat_json_check.py" cmp "$tmp/want.txt" "$tmp/got.txt"
