#!/usr/bin/env bash
# Tokenizer benchmark: trustee's encoder beside HF `tokenizers` (single thread) on the same
# ~6 MB of generated text (prose, code, JSON tool calls, multilingual strings; fixed seed), encoded
# line by line on both sides; only encoding is timed; the ids must be equal. Prints one line:
#   tokenizer: trustee X MB/s, HF tokenizers Y MB/s, ratio X/Y
#
#   bench/tokenizer.sh            (about 30 s on 2 cores)
#
# Settings (environment variables, defaults in brackets):
#   BUILD    build folder holding tests/bench_tokenizer [build; built with cmake when missing]
#   PYTHON   python with HF tokenizers [.venv/bin/python; scripts/install-deps.sh --tests]
#   MB [6]   SEED [1]   REPEATS [3]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$SRC/build}
PYTHON=${PYTHON:-$SRC/.venv/bin/python}
MB=${MB:-6} SEED=${SEED:-1} REPEATS=${REPEATS:-3}
bin=$BUILD/tests/bench_tokenizer
if [ ! -x "$bin" ]; then
  echo "bench/tokenizer.sh: $bin not found; building it" >&2
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" --target bench_tokenizer -j "$(nproc)" >/dev/null
fi
if ! "$PYTHON" -c 'import tokenizers' 2>/dev/null; then
  echo "bench/tokenizer.sh: $PYTHON cannot import HF tokenizers; run scripts/install-deps.sh --tests" >&2
  exit 1
fi
exec "$PYTHON" "$SRC/bench/tokenizer_bench.py" --bin "$bin" \
  --tokenizer "$SRC/model/data/qwen3-tokenizer/tokenizer.json" --mb "$MB" --seed "$SEED" --repeats "$REPEATS"
