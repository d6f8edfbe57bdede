#!/usr/bin/env bash
# Differential test of the tokenizer against HF `tokenizers` (from the venv made by
# scripts/install-deps.sh --tests): 10,000 seeded random strings must give identical ids.
# usage: test_tokenizer_diff.sh TOKENIZER_BATCH_BINARY   (ctest sets SRC and PYTHON)
set -euo pipefail
SRC=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
PY=${PYTHON:-$SRC/.venv/bin/python}
batch=${1:?usage: test_tokenizer_diff.sh TOKENIZER_BATCH_BINARY}
if ! "$PY" -c 'import tokenizers' 2>/dev/null; then
  echo "test_tokenizer_diff: FAIL: $PY cannot import HF tokenizers; run scripts/install-deps.sh --tests" >&2
  exit 1
fi
exec "$PY" "$SRC/tests/tokenizer_diff.py" --batch "$batch" \
  --tokenizer "$SRC/model/data/qwen3-tokenizer/tokenizer.json" --n 10000
