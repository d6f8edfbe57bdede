#!/usr/bin/env bash
# Tests of slurm/train.sbatch on the one-node local Slurm (slurm/local-slurm.sh), tiny settings:
#   slurm.sh run          sbatch -O -n 3 (1 simulator, 1 rollout, 1 learner rank launched by
#                         srun --mpi=pmix), 2 steps: the job completes with exit code 0 and the run
#                         log holds 2 steps and >= 8 trajectories
#   slurm.sh requeue [N]  sbatch -n N (default 1) for 8 steps; `scancel --signal=USR1` after the
#                         first checkpoint (what --signal=USR1@120 does before a time limit): the
#                         ranks checkpoint and exit 3, the script requeues the job, the requeued
#                         job resumes and finishes; the run log has each step exactly once, and the
#                         run log and final weights equal those of a straight run without Slurm
# Starts the local Slurm (installing slurm-wlm + munge if needed; exit 77 when that is impossible)
# and stops it again on exit, unless it was already running before the test.
# Environment (ctest sets it): TRUSTEE, SRC.
set -euo pipefail
mode=${1:?usage: slurm.sh run|requeue [NTASKS]}
PY=/usr/bin/python3
LS=$SRC/slurm/local-slurm.sh
SBATCH_SCRIPT=$SRC/slurm/train.sbatch
CHECK="$PY $SRC/tests/runlog_check.py"

if [ "$(id -u)" != 0 ] && ! command -v sbatch > /dev/null; then
  echo "SKIP: Slurm is not installed and installing it needs root"; exit 77
fi
if ! "$LS" install; then echo "SKIP: Slurm (slurm-wlm, munge) is not installed and could not be installed"; exit 77; fi
if [ "$(id -u)" != 0 ]; then echo "SKIP: the local Slurm (slurm/local-slurm.sh) runs as root"; exit 77; fi

work=$(mktemp -d /tmp/trustee-slurm-XXXXXX)
jobs_submitted=()
started=0
cleanup() {
  local rc=$? j
  for j in "${jobs_submitted[@]}"; do
    if squeue -h -j "$j" 2> /dev/null | grep -q .; then echo "cleanup: scancel $j"; scancel "$j" || true; fi
  done
  if [ "$started" = 1 ]; then "$LS" stop || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT # so that the EXIT trap cleans up when ctest or a user stops the test
if "$LS" status 2> /dev/null | grep -q '^running: slurmctld'; then
  echo "local Slurm already running: it stays up after the test"
else
  started=1
fi
"$LS" start

# the TINY settings of tests/job.sh: a tiny policy, short episodes, 2 tasks x 2 rollouts per step
TINY="--tasks 2 --group 2 --envs airline,banking --copy-repeat-steps 2 --copy-steps 2 --copy-batch 2 --sft-steps 2 --sft-examples 4 --sft-batch 2
      --eval-tasks 1 --eval-difficulties 1,50 --init-hidden 32 --init-layers 1 --init-heads 2
      --init-kv-heads 1 --init-head-dim 16 --init-intermediate 64 --max-new-tokens 24 --max-turns 3
      --max-episode-tokens 2048 --micro-batch 4 --ckpt-every 1 --keep-ckpts 10 --baseline 0"
export TRUSTEE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

job_field() { # job_field JOBID KEY: one KEY=value of `scontrol show job`
  scontrol show job "$1" | grep -oE "(^| )$2=[^ ]*" | head -1 | cut -d= -f2
}

case "$mode" in
run)
  # -O: 3 tasks on the 2-CPU node (without it the job is rejected: EnforcePartLimits=ALL)
  rc=0
  res=$(RUN_DIR="$work/run" TRUSTEE_ARGS="$TINY" SIM_RANKS=1 ROLLOUT_RANKS=1 \
        "$LS" submit-wait 300 -O -n 3 -o "$work/job.out" "$SBATCH_SCRIPT" --steps 2) || rc=$?
  read -r jid state ec <<< "$res"
  jobs_submitted+=("$jid")
  echo "job $jid: state $state, exit code $ec (submit-wait rc $rc)"
  grep -E '^(train\.sbatch|trustee train:|step [0-9]+/|done:|srun:)' "$work/job.out" || true
  if [ "$rc" != 0 ] || [ "$state" != COMPLETED ] || [ "$ec" != 0:0 ]; then
    echo "FAIL: expected COMPLETED 0:0"; cat "$work/job.out"; exit 1
  fi
  grep -q '^train.sbatch: 3 ranks: 1 learner, 1 rollout, 1 simulator$' "$work/job.out"
  grep -q '^trustee train: 3 rank(s): 1 learner, 1 rollout, 1 simulator;' "$work/job.out"
  $CHECK "$work/run/run.h5" --steps 2 --min-traj 8
  ;;
requeue)
  np=${2:-1}
  steps=8
  # a bit more work per step than TINY, so that the signal lands in the middle of the run
  MORE="--tasks 4 --group 4 --max-new-tokens 64"
  split=()
  [ "$np" -gt 1 ] && split=(SIM_RANKS=1 ROLLOUT_RANKS=1)
  oc=()
  [ "$np" -gt "$(nproc)" ] && oc=(-O)
  jid=$(env "${split[@]}" RUN_DIR="$work/run" TRUSTEE_ARGS="$TINY $MORE" \
        sbatch --parsable "${oc[@]}" -n "$np" -o "$work/job.out" "$SBATCH_SCRIPT" --steps "$steps")
  jid=${jid%%;*}
  jobs_submitted+=("$jid")
  echo "submitted job $jid (-n $np, $steps steps)"
  # wait until step 1 is checkpointed, then signal the job steps in the middle of the next one
  for _ in $(seq 1 1200); do [ -d "$work/run/checkpoints/step-000001" ] && break; sleep 0.1; done
  [ -d "$work/run/checkpoints/step-000001" ] || { echo "FAIL: no checkpoint of step 1 after 120 s"; cat "$work/job.out"; exit 1; }
  sleep 0.4
  scancel --signal=USR1 "$jid"
  echo "sent SIGUSR1 to the steps of job $jid"
  # the job requeues itself (pending for cred_expire seconds), runs again and completes
  t0=$SECONDS
  while squeue -h -j "$jid" 2> /dev/null | grep -q .; do
    if ((SECONDS - t0 > 300)); then echo "FAIL: job $jid not finished 300 s after the signal"; cat "$work/job.out"; exit 1; fi
    sleep 0.5
  done
  state=$(job_field "$jid" JobState) ec=$(job_field "$jid" ExitCode) restarts=$(job_field "$jid" Restarts)
  echo "job $jid: state $state, exit code $ec, restarts $restarts, $((SECONDS - t0)) s from the signal to the end"
  grep -E '^(train\.sbatch|resumed|stopped|done:|srun:)' "$work/job.out" || true
  grep -q '^stopped by a signal after step [0-9]*: checkpoint written' "$work/job.out" ||
    { echo "FAIL: the run was not stopped by the signal"; cat "$work/job.out"; exit 1; }
  grep -q "^train.sbatch: stopped after a checkpoint (exit 3): requeueing job $jid" "$work/job.out" ||
    { echo "FAIL: the script did not requeue on exit 3"; exit 1; }
  grep -q '^resumed from .*/checkpoints/step-' "$work/job.out" || { echo "FAIL: the requeued job did not resume"; exit 1; }
  if [ "$state" != COMPLETED ] || [ "$ec" != 0:0 ] || [ "$restarts" != 1 ]; then
    echo "FAIL: expected COMPLETED 0:0 after 1 restart"; cat "$work/job.out"; exit 1
  fi
  # each step exactly once (runlog_check: /steps.step == 1..rows)
  $CHECK "$work/run/run.h5" --steps "$steps" --min-traj 8
  # the same as a straight run of the same split without Slurm
  ref=("$TRUSTEE" train --run-dir "$work/ref")
  if [ "$np" -gt 1 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    ref=(mpirun --oversubscribe -np "$np" "${ref[@]}" --sim-ranks 1 --rollout-ranks 1)
  fi
  # shellcheck disable=SC2086  # word splitting of the settings is intended
  "${ref[@]}" $TINY $MORE --steps "$steps" > "$work/ref.out"
  $PY "$SRC/tests/runlog_compare.py" "$work/ref/run.h5" "$work/run/run.h5"
  ck=checkpoints/step-$(printf %06d "$steps")/model.safetensors
  cmp "$work/ref/$ck" "$work/run/$ck" && echo "weights at step $steps: identical to the straight run"
  ;;
*) echo "slurm.sh: unknown mode $mode"; exit 2 ;;
esac
echo "slurm $mode: ok"
