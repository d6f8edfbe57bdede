#!/bin/bash
# The renderer against the official template run by jinja2 (as HF transformers runs it) on random
# contexts, and its ids against HF `tokenizers`. Needs PYTHON (the venv) with tokenizers and jinja2;
# skipped (77) when jinja2 is not importable (add it with: $PYTHON -m pip install jinja2, or point
# PYTHONPATH at a folder that has it).
# usage: chat_template.sh CHAT_TOOL
set -euo pipefail
if ! "$PYTHON" -c 'import jinja2, tokenizers' 2>/dev/null; then
    echo "jinja2 or tokenizers not importable by $PYTHON: skipped"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" "$SRC/tests/chat_template_check.py" gen "$tmp/in.jsonl" 400
"$1" render "$tmp/in.jsonl" > "$tmp/got.jsonl"
"$PYTHON" "$SRC/tests/chat_template_check.py" cmp "$SRC" "$tmp/in.jsonl" "$tmp/got.jsonl"
