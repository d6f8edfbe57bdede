#!/usr/bin/env bash
# The HDF5 run log (comm/runlog) read back by h5py. usage: runlog.sh values|live|crash
#   values: test_runlog's files and a runlog_tool file pass tests/runlog_check.py, every value equals
#           the formula re-derived in tests/runlog_values.py, and HDF5 printed nothing on stderr
#           while test_runlog ran its refusals;
#   live:   a writer appends a step every 100 ms for ~2 s; an h5py SWMR reader polling with
#           refresh() sees the row count grow (>= 3 distinct counts) without an error;
#   crash:  a writer is killed with SIGKILL while the file is open; reports whether a plain
#           (non-SWMR) h5py open and a plain H5Fopen(RDWR) still open it, checks it as a SWMR
#           reader, resumes at the checkpoint of step 3 (exactly steps 1..3 kept), appends 4..5,
#           and resumes the cleanly closed result at step 2.
# Environment (tests/runlog.cmake): RUNLOG_TOOL, TEST_RUNLOG, BUILD, SRC.
set -uo pipefail
SRC=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
PY=/usr/bin/python3
part=${1:?usage: runlog.sh values|live|crash}
"$PY" -c 'import h5py, numpy' 2>/dev/null || { echo "SKIP: /usr/bin/python3 has no h5py/numpy"; exit 77; }
CHECK="$PY $SRC/tests/runlog_check.py"
VALUES="$PY $SRC/tests/runlog_values.py"
work=${BUILD:-/tmp}/runlog-$part
rm -rf "$work" && mkdir -p "$work"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
expect_line() { # LABEL REGEX CMD... : runs CMD, prints its output, its last line must match REGEX
  local label=$1 re=$2; shift 2
  local out; out=$("$@" 2>&1); local rc=$?
  echo "$out" | sed "s|^|$label: |"
  [ "$rc" -eq 0 ] || fail "$label: exit status $rc"
  echo "$out" | tail -n 1 | grep -qE "$re" || fail "$label: last line does not match $re"
}

case $part in
values)
  "$TEST_RUNLOG" "$work/c" >"$work/c.out" 2>"$work/c.err" || { fail "test_runlog failed"; cat "$work/c.out" "$work/c.err"; }
  tail -n 1 "$work/c.out"
  grep -q 'HDF5-DIAG' "$work/c.err" "$work/c.out" && fail "HDF5 printed its error stack during test_runlog"
  expect_line check-known '^runlog ok: 4 steps, 16 trajectories, 161 tokens, 8 curriculum rows, 4 eval rows$' \
    $CHECK "$work/c/known.h5" --steps 4 --min-traj 16 --expect-eval
  expect_line values-known '^values ok' $VALUES "$work/c/known.h5" 4
  expect_line check-resumed '^runlog ok: 5 steps, 20 trajectories' $CHECK "$work/c/resumed.h5" --steps 5
  expect_line values-resumed '^values ok' $VALUES "$work/c/resumed.h5" 5
  "$RUNLOG_TOOL" write "$work/w.h5" 12 || fail "runlog_tool write"
  expect_line check-12 '^runlog ok: 12 steps, 48 trajectories' $CHECK "$work/w.h5" --steps 12 --min-traj 48 --expect-eval
  expect_line values-12 '^values ok' $VALUES "$work/w.h5" 12
  # the checker must fail on wrong expectations and on a file that is not a run log
  $CHECK "$work/w.h5" --steps 11 >"$work/neg.out" 2>&1 && fail "checker accepted --steps 11 for 12 steps"
  grep -q '^runlog FAILED: .*/steps has 12 rows, expected 11' "$work/neg.out" || { fail "checker message"; cat "$work/neg.out"; }
  $CHECK "$work/w.h5" --min-traj 49 >/dev/null 2>&1 && fail "checker accepted --min-traj 49 for 48"
  $VALUES "$work/w.h5" 11 >/dev/null 2>&1 && fail "runlog_values accepted 11 steps for 12"
  "$PY" -c "import h5py; h5py.File('$work/plain.h5', 'w')['x'] = [1]"
  $CHECK "$work/plain.h5" >"$work/neg.out" 2>&1 && fail "checker accepted a plain HDF5 file"
  grep -q "format = None, expected 'trustee-runlog'" "$work/neg.out" || { fail "checker message on a plain file"; cat "$work/neg.out"; }
  # the on-disk types, as h5dump sees them (independent of h5py)
  if command -v h5dump >/dev/null; then
    h5dump -H "$work/w.h5" >"$work/dump.txt"
    grep -q 'H5T_ARRAY { \[5\] H5T_STD_I32LE }' "$work/dump.txt" || fail "aborted is not an H5T_ARRAY [5] of int32"
    grep -q 'STRPAD H5T_STR_NULLPAD' "$work/dump.txt" || fail "no NUL-padded fixed strings"
    grep -q 'H5S_UNLIMITED' "$work/dump.txt" || fail "no unlimited dataspace"
  fi
  ;;
live)
  f=$work/live.h5
  "$RUNLOG_TOOL" live "$f" 20 100 >"$work/writer.out" 2>&1 &
  writer=$!
  "$PY" - "$f" <<'PYEOF' || fail "live reader"
import os, sys, time
import h5py
path = sys.argv[1]
t0 = time.time()
while not os.path.exists(path + ".ready"):  # created, SWMR writing started
    if time.time() - t0 > 10: sys.exit("writer never got ready")
    time.sleep(0.01)
f = h5py.File(path, "r", libver="latest", swmr=True)
steps, rows = f["steps"], f["trajectories/rows"]
counts = []
while time.time() - t0 < 15:
    steps.refresh(); rows.refresh()
    n = steps.shape[0]
    if not counts or counts[-1] != n:
        counts.append(n)
        if n:  # the newest row is readable and whole
            last = steps[n - 1]
            assert last["step"] == n, (last["step"], n)
            assert rows.shape[0] >= 4 * n, (rows.shape[0], n)
    if n == 20: break
    time.sleep(0.03)
f.close()
print(f"live reader: saw {len(counts)} distinct step counts: {counts}")
if len(counts) < 3 or counts[-1] != 20: sys.exit("live reader: expected >= 3 distinct counts ending at 20")
PYEOF
  wait $writer || { fail "writer exit status"; cat "$work/writer.out"; }
  expect_line check-live '^runlog ok: 20 steps, 80 trajectories' $CHECK "$f" --steps 20 --min-traj 80 --expect-eval
  ;;
crash)
  f=$work/crash.h5
  "$RUNLOG_TOOL" crash "$f" 6 >"$work/writer.out" 2>&1 &
  writer=$!
  for _ in $(seq 1 500); do [ -e "$f.crashready" ] && break; sleep 0.02; done
  [ -e "$f.crashready" ] || { fail "crash writer never got ready"; cat "$work/writer.out"; }
  kill -9 $writer
  wait $writer 2>/dev/null
  # what other tools meet: a plain h5py open, a plain H5Fopen(RDWR) (reported, not required)
  plain=$("$PY" -c "import h5py; h5py.File('$f', 'r')" 2>&1 | tail -n 1)
  [ -z "$plain" ] && echo "after kill -9: plain h5py open (non-SWMR, read-only): succeeds" ||
    echo "after kill -9: plain h5py open (non-SWMR, read-only): fails: $plain"
  echo "after kill -9: plain H5Fopen(H5F_ACC_RDWR): $("$RUNLOG_TOOL" open-rdwr "$f")"
  expect_line check-crashed '^runlog ok: 6 steps, 24 trajectories' $CHECK "$f" --steps 6 --min-traj 24
  pos3=$(awk '$1 == 3 {print $2, $3, $4, $5, $6, $7, $8}' "$f.pos")
  echo "checkpoint position at step 3: $pos3"
  if command -v h5clear >/dev/null; then # the by-hand repair documented in docs/runlog.md
    cp "$f" "$work/cleared.h5" && cp "$f" "$work/half.h5"
    h5clear -s --increment "$work/cleared.h5" || fail "h5clear -s --increment"
    "$PY" -c "import h5py; h5py.File('$work/cleared.h5', 'r')['trajectories/text'][...]" ||
      fail "plain h5py read after h5clear -s --increment"
    expect_line check-h5clear '^runlog ok: 6 steps' $CHECK "$work/cleared.h5" --steps 6
    # shellcheck disable=SC2086
    "$RUNLOG_TOOL" resume "$work/cleared.h5" $pos3 4 4 || fail "resume of the h5clear'ed file"
    expect_line values-h5clear '^values ok' $VALUES "$work/cleared.h5" 4
    # h5clear -s alone leaves a stale end of allocation: resume must say so, not hang
    h5clear -s "$work/half.h5"
    # shellcheck disable=SC2086
    out=$(timeout 60 "$RUNLOG_TOOL" resume "$work/half.h5" $pos3 4 4 2>&1); rc=$?
    echo "after h5clear -s only: rc=$rc $out"
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "resume after h5clear -s only: rc $rc"
    echo "$out" | grep -q "h5clear -s --increment" || fail "resume after h5clear -s only: message"
  fi
  # shellcheck disable=SC2086
  "$RUNLOG_TOOL" resume "$f" $pos3 4 5 || fail "resume of the crashed file at step 3"
  [ ! -e "$f.resume.tmp" ] || fail "resume left $f.resume.tmp"
  expect_line check-resumed '^runlog ok: 5 steps, 20 trajectories' $CHECK "$f" --steps 5 --min-traj 20 --expect-eval
  expect_line values-resumed '^values ok' $VALUES "$f" 5
  "$PY" -c "import h5py; h5py.File('$f', 'r').close()" || fail "a plain h5py open fails after resume + close"
  echo "$("$RUNLOG_TOOL" open-rdwr "$f") after resume + close"
  # resume again from the cleanly closed file, at step 2, and append 3
  pos2=$(awk '$1 == 2 {print $2, $3, $4, $5, $6, $7, $8}' "$f.pos")
  # shellcheck disable=SC2086
  "$RUNLOG_TOOL" resume "$f" $pos2 3 3 || fail "resume of the closed file at step 2"
  expect_line check-clean '^runlog ok: 3 steps, 12 trajectories' $CHECK "$f" --steps 3
  expect_line values-clean '^values ok' $VALUES "$f" 3
  # a position past the end (the crashed file's step 6 against a 3-step file) is refused, file kept
  pos6=$(awk '$1 == 6 {print $2, $3, $4, $5, $6, $7, $8}' "$f.pos")
  # shellcheck disable=SC2086
  out=$("$RUNLOG_TOOL" resume "$f" $pos6 7 7 2>&1) && fail "resume past the end accepted"
  echo "past the end: $out"
  echo "$out" | grep -q "/steps has 3 rows, the resume position needs 6" || fail "past-the-end message"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "past-the-end: not one line"
  expect_line check-kept '^runlog ok: 3 steps' $CHECK "$f" --steps 3
  # killed in the middle of appends (whatever it was writing): resume at step 3 is still exact
  f=$work/busy.h5
  "$RUNLOG_TOOL" crash "$f" 5 busy >"$work/busy.out" 2>&1 &
  writer=$!
  for _ in $(seq 1 500); do [ -e "$f.crashready" ] && break; sleep 0.02; done
  sleep 0.3
  kill -9 $writer
  wait $writer 2>/dev/null
  $CHECK "$f" | sed 's/^/busy, as killed: /' # informative (rows past the last flush may be partial)
  pos3=$(awk '$1 == 3 {print $2, $3, $4, $5, $6, $7, $8}' "$f.pos")
  # shellcheck disable=SC2086
  "$RUNLOG_TOOL" resume "$f" $pos3 4 4 || fail "resume of the busy-killed file at step 3"
  expect_line values-busy '^values ok' $VALUES "$f" 4
  ;;
*) echo "unknown part $part"; exit 2 ;;
esac
echo "runlog_$part: $failures failures"
[ "$failures" -eq 0 ] || exit 1
rm -rf "$work"
