#!/usr/bin/env bash
# Benchmark of the distributed job: trajectories/s with 1 vs 2 rollout ranks, and the time split per
# step, read back from each run's log (/steps: t_rollout t_sim t_train t_sync t_step).
#
#   bench/job.sh [BUILD_DIR]      (default: build)
#
# Both runs: mpirun, one simulator rank and one learner, OMP_NUM_THREADS=1 per rank, the laptop
# preset's policy shape (random init, no SFT warm start: this measures throughput, not learning),
# STEPS steps of TASKS tasks x GROUP rollouts, no held-out evaluation. On a 2-core machine the
# ranks are oversubscribed (3 and 4 ranks on 2 cores), so 2 rollout ranks can at best use the core
# the learner and simulator leave idle while rollouts run; on a node with more cores they scale
# further. Settings can be changed with STEPS, TASKS, GROUP, MAX_NEW_TOKENS in the environment.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
trustee=$build/trustee
[ -x "$trustee" ] || { echo "bench/job.sh: $trustee not found (build first)"; exit 1; }
STEPS=${STEPS:-5} TASKS=${TASKS:-16} GROUP=${GROUP:-8} MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-64}
work=$(mktemp -d /tmp/trustee-bench-job-XXXXXX)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
args=(train --steps "$STEPS" --tasks "$TASKS" --group "$GROUP" --sft-steps 0 --eval-tasks 0
      --max-new-tokens "$MAX_NEW_TOKENS" --max-turns 4 --ckpt-every 1000)
echo "bench/job.sh: $STEPS steps x $TASKS tasks x $GROUP rollouts, $(nproc) cores, $(date -u +%F)"
for m in 1 2; do
  np=$((2 + m))
  t0=$(date +%s.%N)
  mpirun --oversubscribe -np "$np" -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 -x OMP_WAIT_POLICY=PASSIVE \
    "$trustee" "${args[@]}" --run-dir "$work/r$m" --sim-ranks 1 --rollout-ranks "$m" > "$work/log$m.txt" 2>&1 \
    || { cat "$work/log$m.txt"; exit 1; }
  t1=$(date +%s.%N)
  echo "$m $(echo "$t1 - $t0" | bc)" >> "$work/wall.txt"
done
/usr/bin/python3 - "$work" <<'PY'
import sys, h5py, numpy as np
work = sys.argv[1]
res = {}
for m in (1, 2):
    s = h5py.File(f"{work}/r{m}/run.h5", "r", libver="latest", swmr=True)["steps"][()]
    n = int(s["n_traj"].sum())
    # steps after the first: the first step also pays start-up (engine, KV cache, first prefill)
    sl = s[1:] if len(s) > 1 else s
    res[m] = dict(n=n, traj_per_s=sl["n_traj"].sum() / sl["t_step"].sum(),
                  rollout_traj_per_s=sl["n_traj"].sum() / sl["t_rollout"].sum(),
                  split={k: float(sl[k].mean()) for k in ("t_rollout", "t_sim", "t_train", "t_sync", "t_step")},
                  tok=float(sl["tokens_per_s"].mean()))
print("\ntime split per step (mean over steps 2.., seconds):")
print(f"  {'rollout ranks':>13} {'rollout':>8} {'sim':>8} {'train':>8} {'sync':>8} {'step':>8} {'tok/s/rank':>10}")
for m, r in res.items():
    sp = r["split"]
    print(f"  {m:>13} {sp['t_rollout']:8.2f} {sp['t_sim']:8.2f} {sp['t_train']:8.2f} {sp['t_sync']:8.3f} "
          f"{sp['t_step']:8.2f} {r['tok']:10.0f}")
print("\ntrajectories/s (steps 2..; step = the interval between two updates; rollout = dispatch to last trajectory):")
for m, r in res.items():
    print(f"  {m} rollout rank(s): {r['traj_per_s']:.2f} traj/s per step interval, "
          f"{r['rollout_traj_per_s']:.2f} traj/s during rollout ({r['n']} trajectories)")
print(f"ratio 2 vs 1 rollout ranks: {res[2]['traj_per_s'] / res[1]['traj_per_s']:.2f} (per step interval), "
      f"{res[2]['rollout_traj_per_s'] / res[1]['rollout_traj_per_s']:.2f} (during rollout)")
PY
