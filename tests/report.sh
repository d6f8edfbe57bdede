#!/bin/bash
# The run-log report (scripts/report.py) and `trustee inspect` on a tiny real run (2 steps, 2 tasks x
# 2 rollouts, programmatic airline + banking, SFT warm-up and held-out evaluation at D 1 and 50):
# - report.py writes every PNG (each a PNG that decodes, of plausible size and dimensions) and a
#   summary.txt whose lines agree with the run log as read by h5py here;
# - report.py on a run log with empty tables (schema only) still writes every plot and says
#   "no eval rows" / "no steps yet";
# - inspect prints the step row (values compared with h5py), the tasks, the trajectory list, a
#   transcript ("<|im_start|>system"), the reward details; errors: --step out of range names the
#   range, --traj out of range, a missing file, a file that is not a run log, an empty run log.
set -euo pipefail
: "${TRUSTEE:?}" "${BUILD:?}" "${SRC:?}"
py=/usr/bin/python3
"$py" -c 'import h5py, numpy, matplotlib' 2>/dev/null ||
  { echo "no h5py/numpy/matplotlib under $py (scripts/install-deps.sh): skipped"; exit 77; }
W="$BUILD/report-test"
rm -rf "$W" && mkdir -p "$W"
fail=0
OMP_NUM_THREADS=1 "$TRUSTEE" train --run-dir "$W/run" --steps 2 --tasks 2 --group 2 --envs airline,banking \
  --copy-repeat-steps 2 --copy-steps 2 --copy-batch 2 --copy-p-window 0.5 --sft-steps 2 --sft-examples 4 --sft-batch 2 --eval-tasks 1 --eval-difficulties 1,50 --init-hidden 32 \
  --init-layers 1 --init-heads 2 --init-kv-heads 1 --init-head-dim 16 --init-intermediate 64 \
  --max-new-tokens 24 --max-turns 3 --max-episode-tokens 2048 --micro-batch 4 >"$W/train.log" 2>&1 ||
  { tail -20 "$W/train.log"; echo "FAIL: trustee train"; exit 1; }
RUN="$W/run/run.h5"

# ---- report.py ----
# its Wilson interval contains k / n for every k <= n <= 300, is [0, .] at k = 0 and [., 1] at
# k = n (rounding put the bound at 0 / 100 a hair above 0 and broke the eval plot), and matches
# the closed form at a few points computed here
"$py" - "$SRC/scripts" <<'PYEOF' || { echo "FAIL: report.wilson"; exit 1; }
import math, sys
sys.path.insert(0, sys.argv[1])
from report import wilson
bad = [(k, n) for n in range(1, 301) for k in range(n + 1)
       if not (wilson(k, n)[0] <= k / n <= wilson(k, n)[1]) or (k == 0 and wilson(k, n)[0] != 0.0)
       or (k == n and wilson(k, n)[1] != 1.0)]
z = 1.959963984540054
for k, n in ((21, 100), (3, 20), (1, 7)):
    p = k / n
    c, h = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    want = ((c - h) / (1 + z * z / n), (c + h) / (1 + z * z / n))
    if max(abs(a - b) for a, b in zip(wilson(k, n), want)) > 1e-12:
        bad.append((k, n, wilson(k, n), want))
print(f"report.wilson: {len(bad)} bad of {sum(n + 1 for n in range(1, 301))} (k, n) pairs; 21/100 -> "
      f"{100 * wilson(21, 100)[0]:.1f}-{100 * wilson(21, 100)[1]:.1f}%")
sys.exit(1 if bad else 0)
PYEOF
"$py" "$SRC/scripts/report.py" "$RUN" >"$W/report.out" || { echo "FAIL: report.py"; exit 1; }
cat "$W/report.out"
"$py" - "$RUN" "$W/run/report" <<'PYEOF' || fail=1
import math, os, struct, sys
import h5py, numpy as np
import matplotlib.image as mpimg
run, out = sys.argv[1], sys.argv[2]
bad = []
def check_png(p, min_bytes):
    if not os.path.exists(p):
        return bad.append(p + ": missing")
    b = open(p, "rb").read()
    if b[:8] != b"\x89PNG\r\n\x1a\n" or b[12:16] != b"IHDR":
        return bad.append(p + ": not a PNG")
    w, h = struct.unpack(">II", b[16:24])
    if len(b) < min_bytes or not (400 <= w <= 3000 and 250 <= h <= 3000):
        bad.append("%s: %d bytes, %dx%d" % (p, len(b), w, h))
    img = mpimg.imread(p)  # decodes the whole image
    if img.std() < 0.01:
        bad.append(p + ": blank image")
for name in ["reward_success", "difficulty", "optimizer", "time_split", "aborted", "eval"]:
    check_png(os.path.join(out, name + ".png"), 10000)
# summary.txt against the file, read here
f = h5py.File(run, "r", libver="latest", swmr=True)
s, ev = f["steps"][()], f["eval"][()]
lines = open(os.path.join(out, "summary.txt")).read().splitlines()
want = ["steps: %d (steps 1..%d)" % (len(s), len(s)),
        "final D: %d (started at %d)" % (s["difficulty_next"][-1], s["difficulty"][0]),
        "reward: first 1 steps %+.3f, last 1 steps %+.3f" % (s["mean_reward"][0], s["mean_reward"][-1]),
        "eval (all environments):"]
for w in want:
    if not any(l.startswith(w) for l in lines):
        bad.append("summary.txt: no line starting %r" % w)
# one eval line per (phase, D) of the "all" rows, with n / successes and the Wilson interval
z = 1.959963984540054
for r in ev[ev["env"] == b"all"]:
    n, k = int(r["n"]), int(r["successes"])
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    hw = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = max(0, c - hw), min(1, c + hw)
    ph = "%s (step %d)" % (r["phase"].decode(), r["step"])
    hit = [l for l in lines if l.strip().startswith(ph) and l.split()[3] == str(int(r["difficulty"]))]
    exp = "%5.1f-%5.1f%%" % (100 * lo, 100 * hi)
    if len(hit) != 1 or exp not in hit[0] or hit[0].split()[4:6] != [str(n), str(k)]:
        bad.append("summary.txt: eval line for %s D %d: %s (want n %d, successes %d, CI %s)" % (ph, r["difficulty"], hit, n, k, exp))
if len(s) != 2 or s["step"].tolist() != [1, 2]:
    bad.append("run log steps %s" % s["step"].tolist())
print("\n".join("FAIL: " + b for b in bad) if bad else "report.py output: ok")
sys.exit(1 if bad else 0)
PYEOF

# ---- report.py on a run log with empty tables (the schema of the real one, no rows) ----
"$py" - "$RUN" "$W/empty/run.h5" <<'PYEOF'
import os, sys, h5py
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(dst), exist_ok=True)
with h5py.File(src, "r", swmr=True) as f, h5py.File(dst, "w", libver="latest") as g:
    for k, v in f.attrs.items():
        g.attrs[k] = v
    g.create_group("trajectories")
    for name in ["steps", "curriculum", "eval", "trajectories/rows", "trajectories/ids", "trajectories/logprobs",
                 "trajectories/mask", "trajectories/text", "trajectories/details"]:
        d = g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=f[name].dtype, chunks=(64,))
        for k, v in f[name].attrs.items():
            d.attrs[k] = v
PYEOF
"$py" "$SRC/scripts/report.py" "$W/empty/run.h5" --out "$W/empty-report" >"$W/empty.out" ||
  { echo "FAIL: report.py on an empty run log"; fail=1; }
grep -q '^eval: no eval rows$' "$W/empty.out" || { echo "FAIL: empty run log: no 'eval: no eval rows'"; fail=1; }
grep -q '^steps: 0 (no steps yet)$' "$W/empty-report/summary.txt" || { echo "FAIL: empty summary.txt"; fail=1; }
for p in reward_success difficulty optimizer time_split aborted eval; do
  [ -s "$W/empty-report/$p.png" ] || { echo "FAIL: empty run log: $p.png missing"; fail=1; }
done

# ---- trustee inspect ----
expect() { # expect RC PATTERN ARGS...: exit status RC and PATTERN in stdout+stderr
  local rc=$1 pat=$2; shift 2
  local got=0
  "$TRUSTEE" inspect "$@" >"$W/inspect.txt" 2>&1 || got=$?
  if [ "$got" != "$rc" ] || ! grep -q -- "$pat" "$W/inspect.txt"; then
    echo "FAIL: inspect $* -> exit $got (want $rc), output:"; head -20 "$W/inspect.txt"
    echo "  (wanted a line matching '$pat')"; fail=1
  fi
}
expect 0 '^step 2 (policy version' "$RUN" --step 2
expect 0 '^tasks (/curriculum):' "$RUN" --step 2
expect 0 '^  group 1: ' "$RUN" --step 2
expect 0 '^  \[3\] ' "$RUN" --step 2
# the step row against h5py
"$TRUSTEE" inspect "$RUN" --step 2 >"$W/step2.txt"
"$py" - "$RUN" "$W/step2.txt" <<'PYEOF' || fail=1
import sys, h5py
f = h5py.File(sys.argv[1], "r", swmr=True)
s = f["steps"][()][1]
reasons = [r.decode() if isinstance(r, bytes) else r for r in f["steps"].attrs["reasons"]]
text = open(sys.argv[2]).read()
want = ["D %d -> %d" % (s["difficulty"], s["difficulty_next"]),
        "reward %+.4f  success %.4f  trajectories %d" % (s["mean_reward"], s["success_rate"], s["n_traj"]),
        "KL %.6f  clip_frac %.4f  entropy %.4f" % (s["kl"], s["clip_frac"], s["entropy"]),
        "end reasons: " + ", ".join("%s %d" % (n, c) for n, c in zip(reasons, s["aborted"]))]
bad = [w for w in want if w not in text]
cur = f["curriculum"][()]
for r in cur[cur["step"] == 2]:
    w = "group %d: %s task %d | D %d soft %d tools %d" % (r["group"], r["env"].decode(), r["task_id"], r["difficulty"],
                                                          r["soft"], r["tools_available"])
    if w not in text:
        bad.append(w)
print("\n".join("FAIL: inspect --step 2 lacks: " + b for b in bad) if bad else "inspect step row: ok")
sys.exit(1 if bad else 0)
PYEOF
# a transcript: the second training trajectory of step 1, compared with the stored text
"$TRUSTEE" inspect "$RUN" --step 1 --traj 1 >"$W/traj.txt" || { echo "FAIL: inspect --traj 1"; fail=1; }
grep -q '<|im_start|>system' "$W/traj.txt" || { echo "FAIL: no transcript in inspect --traj"; fail=1; }
"$py" - "$RUN" "$W/traj.txt" <<'PYEOF' || fail=1
import json, sys, h5py
f = h5py.File(sys.argv[1], "r", swmr=True)
rows = f["trajectories/rows"][()]
mine = rows[(rows["step"] == 1) & (rows["eval"] == 0)]
t = mine[1]
text = f["trajectories/text"][t["text_start"]:t["text_start"] + t["text_len"]].tobytes().decode()
det = json.loads(f["trajectories/details"][t["details_start"]:t["details_start"] + t["details_len"]].tobytes())
reasons = [r.decode() if isinstance(r, bytes) else r for r in f["steps"].attrs["reasons"]]
out = open(sys.argv[2]).read()
want = ["env %s  task id %d  group %d  index %d" % (t["env"].decode(), t["task_id"], t["group"], t["index"]),
        "reward %+.4f  score %.4f  turns %d  tool calls %d  end reason %s" % (t["reward"], t["score"], t["turns"],
                                                                             t["tool_calls"], reasons[t["abort"]]),
        text.rstrip("\n")]
bad = [w[:80] for w in want if w not in out]
body = out.split("reward details:\n", 1)[1].split("\ntranscript (", 1)[0]
if json.loads(body) != det:
    bad.append("reward details JSON differs")
print("\n".join("FAIL: inspect --traj 1: " + b for b in bad) if bad else "inspect transcript: ok")
sys.exit(1 if bad else 0)
PYEOF
expect 0 '^held-out evaluation after step 2' "$RUN" --step 2 --eval
expect 0 '<|im_start|>system' "$RUN" --step 0 --eval --traj 0
# errors
expect 1 'step 3 out of range: the run log has steps 1..2' "$RUN" --step 3
expect 1 'step 0 out of range: the run log has steps 1..2' "$RUN" --step 0
expect 1 'traj 4 out of range: step 2 has 4 trajectories (0..3)' "$RUN" --step 2 --traj 4
expect 1 'evaluations after steps: 0, 2' "$RUN" --step 1 --eval
expect 1 'No such file or directory' "$W/nope.h5" --step 1
expect 1 'not an HDF5 file' "$W/run/report/summary.txt" --step 1
expect 1 'the run log has no steps yet' "$W/empty/run.h5" --step 1
"$py" -c 'import h5py, sys; h5py.File(sys.argv[1], "w").create_dataset("x", data=[1])' "$W/other.h5"
expect 1 'not a trustee run log' "$W/other.h5" --step 1
[ "$fail" = 0 ] && echo "report + inspect: ok"
exit "$fail"
