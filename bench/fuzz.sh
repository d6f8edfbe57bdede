#!/usr/bin/env bash
# Long fuzzing run of the comm/msg decoders: builds the libFuzzer targets (needs clang +
# libclang-rt-14-dev) and runs each for 1,000,000 executions (or $1).
#   bench/fuzz.sh [RUNS] [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-1000000}
build=${2:-$here/build}
cmake -S "$here" -B "$build" >/dev/null
cmake --build "$build" -j2 --target fuzz_msg msg_tool
exec bash "$here/tests/fuzz_msg.sh" "$build" "$runs"
