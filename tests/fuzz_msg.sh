#!/usr/bin/env bash
# Runs every libFuzzer target of comm/msg (built by tests/comm.cmake when clang + libFuzzer exist)
# for RUNS executions each, starting from seed corpora of valid encodings (msg_tool gen).
#   tests/fuzz_msg.sh BUILD_DIR [RUNS]      (RUNS default 20000; bench/fuzz.sh uses 1000000)
# Prints libFuzzer's "Done N runs in S second(s)" line per target. Exit 77 when the targets were
# not built (no clang / libclang-rt), 1 when a target crashed (the reproducer is kept and named).
set -euo pipefail
build=${1:?usage: fuzz_msg.sh BUILD_DIR [RUNS]}
runs=${2:-20000}
tdir="$build/tests"
targets=(task sim_req sim_rep traj curric weights shutdown)
if [ ! -x "$tdir/fuzz_msg_task" ]; then
  echo "SKIP: fuzz targets not built (needs clang with libFuzzer: clang + libclang-rt-14-dev)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t/seeds" "$work/$t/new"
  for s in $(seq 1 24); do "$tdir/msg_tool" gen "$t" "$s" "$work/$t/seeds/$s.bin" >/dev/null; done
  # -seed fixed: reproducible runs; -max_len 4096 covers the seeds; new units go to $work/$t/new
  if ! "$tdir/fuzz_msg_$t" -runs="$runs" -seed=1 -max_len=4096 -print_final_stats=0 \
       -artifact_prefix="$tdir/fuzz_msg_${t}_" "$work/$t/new" "$work/$t/seeds" >"$work/$t/log" 2>&1; then
    tail -40 "$work/$t/log"
    echo "fuzz_msg_$t: FAILED (crash input saved as $tdir/fuzz_msg_${t}_*)"
    status=1
    continue
  fi
  echo "fuzz_msg_$t: $(grep -E '^Done [0-9]+ runs' "$work/$t/log") ($(ls "$work/$t/new" | wc -l) new corpus units)"
done
exit $status
