#!/usr/bin/env bash
# The default run's step, before and after the speed work, and its rollout tokens/s beside an eager
# PyTorch Qwen3 of the same config, in one run.
#
#   bench/rollout.sh            (about 3-4 minutes on 2 cores)
#
# Two `trustee train` runs of the laptop preset's policy shape (hidden 128, 2 layers, 4/2 heads,
# head dim 32, intermediate 384, tied, vocabulary 151,936; a random init written by `trustee
# init-model`, so no SFT: this measures speed, not learning), STEPS steps of TASKS tasks x GROUP
# rollouts against the Lua environments, no held-out evaluation, one process:
#   before  --vocab full --share-prompt 0: the LM head over all 151,936 ids, and every rollout
#           prefills its own copy of its task's prompt
#   after   --vocab envs --share-prompt 1 (the laptop defaults): the restricted output vocabulary
#           (one list for sampler and learner) and each task's prompt prefilled once, its KV pages
#           forked for the group
# (the other speed work, the LM head only at the last position while generating and at loss
# positions while training, and buffers planned once, has no switch: both runs have it.)
# From each run's log (/steps): the mean time split per step (rollout, simulator, train, sync,
# whole step) and rollout tokens/s = sampled tokens / rollout seconds.
# The peer: bench/torch_qwen3.py (eager PyTorch, float32, KV cache) on the same checkpoint, batch =
# the rollouts of one step (TASKS x GROUP) at the runs' mean prompt length, GEN_LEN greedy tokens:
# its tokens/s = B*GEN_LEN / (prefill seconds + decode seconds), full vocabulary, the same
# threads. It samples without a simulator in between, so it is the ceiling of a rollout; "before"
# is the like-for-like comparison (full vocabulary), "after" what the default run gets.
#
# Settings (environment variables, defaults in brackets):
#   TRUSTEE  [build/trustee; built when missing]   PYTHON  [/usr/bin/python3 with torch + numpy]
#   STEPS [3]  TASKS [8]  GROUP [8]  MAX_NEW_TOKENS [96]  GEN_LEN [64]  THREADS [2]  SEED [1]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
TRUSTEE=${TRUSTEE:-$SRC/build/trustee}
PYTHON=${PYTHON:-/usr/bin/python3}
HIDDEN=128 LAYERS=2 HEADS=4 KV_HEADS=2 HEAD_DIM=32 INTERMEDIATE=384 TIE=1 DTYPE=f32
STEPS=${STEPS:-3} TASKS=${TASKS:-8} GROUP=${GROUP:-8} MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-96}
GEN_LEN=${GEN_LEN:-64} THREADS=${THREADS:-2} SEED=${SEED:-1}

BENCH_NAME=bench/rollout.sh
# shellcheck source=bench/common.sh
source "$SRC/bench/common.sh"
echo "policy:  hidden $HIDDEN, layers $LAYERS, heads $HEADS/$KV_HEADS, head-dim $HEAD_DIM," \
     "intermediate $INTERMEDIATE, tied, random init; $STEPS steps x $TASKS tasks x $GROUP rollouts," \
     "max_new_tokens $MAX_NEW_TOKENS, threads $THREADS"
echo

common=(train --policy "$tmp/model" --steps "$STEPS" --tasks "$TASKS" --group "$GROUP" --eval-tasks 0
        --baseline 0 --max-new-tokens "$MAX_NEW_TOKENS" --seed "$SEED" --ckpt-every 1000)
for v in before after; do
  if [ $v = before ]; then flags=(--vocab full --share-prompt 0); else flags=(--vocab envs --share-prompt 1); fi
  echo "trustee train ${flags[*]} ..."
  OMP_NUM_THREADS=$THREADS "$TRUSTEE" "${common[@]}" "${flags[@]}" --run-dir "$tmp/$v" >"$tmp/$v.log" 2>&1 ||
    { tail -20 "$tmp/$v.log" >&2; die "trustee train ($v) failed"; }
done

# time split and tokens/s of both runs; the mean initial prompt length (n_prompt)
/usr/bin/python3 - "$tmp" >"$tmp/split.txt" <<'PY'
import sys, h5py, numpy as np
tmp = sys.argv[1]
plen = []
for v in ("before", "after"):
    f = h5py.File(f"{tmp}/{v}/run.h5", "r", libver="latest", swmr=True)
    s = f["steps"][()]
    cols = ["t_rollout", "t_sim", "t_train", "t_sync", "t_step"]
    means = [float(np.mean(s[c])) for c in cols]
    sampled = float(np.sum(s["tokens_per_s"] * s["t_rollout"]))
    tps = sampled / float(np.sum(s["t_rollout"]))
    print(f"{v} " + " ".join(f"{m:.3f}" for m in means) + f" {tps:.1f} {int(sampled)}")
    plen += [int(x) for x in f["trajectories/rows"]["n_prompt"]]
print(f"prompt_len {int(round(np.mean(plen)))}")
PY
read -r _ b_roll b_sim b_train b_sync b_step b_tps b_tok < <(grep '^before ' "$tmp/split.txt")
read -r _ a_roll a_sim a_train a_sync a_step a_tps a_tok < <(grep '^after ' "$tmp/split.txt")
plen=$(sed -n 's/^prompt_len //p' "$tmp/split.txt")

echo
echo "time split per step (mean seconds over $STEPS steps; rollouts of step n+1 overlap step n's update):"
printf "  %-8s %9s %9s %9s %9s %9s | %12s\n" "" rollout sim train sync step "rollout tok/s"
printf "  %-8s %9s %9s %9s %9s %9s | %12s   (%s sampled tokens)\n" before "$b_roll" "$b_sim" "$b_train" "$b_sync" "$b_step" "$b_tps" "$b_tok"
printf "  %-8s %9s %9s %9s %9s %9s | %12s   (%s sampled tokens)\n" after "$a_roll" "$a_sim" "$a_train" "$a_sync" "$a_step" "$a_tps" "$a_tok"
awk -v b="$b_step" -v a="$a_step" -v br="$b_roll" -v ar="$a_roll" -v bt="$b_train" -v at="$a_train" 'BEGIN {
  printf "  after vs before: step %.2fx faster, rollout %.2fx, train %.2fx\n", b / a, br / ar, (at > 0 ? bt / at : 0) }'

echo
if [ "$have_torch" = 1 ]; then
  B=$((TASKS * GROUP))
  line=$(OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} "$PYTHON" "$SRC/bench/torch_qwen3.py" --model "$tmp/model" --batch "$B" \
         --prompt-len "$plen" --gen-len "$GEN_LEN" --seed "$SEED" --threads "$THREADS" | grep '^torch ' | tail -1)
  echo "$line"
  awk -v line="$line" -v B="$B" -v L="$plen" -v T="$GEN_LEN" -v bt="$b_tps" -v at="$a_tps" 'BEGIN {
    n = split(line, w, " "); for (i = 1; i <= n; i++) { split(w[i], kv, "="); f[kv[1]] = kv[2] }
    t = B * T / (B * L / f["prefill_tok_s"] + B * T / f["decode_tok_s"])
    printf "torch eager (batch %d, prompt %d, %d tokens, full vocabulary): %.1f tok/s\n", B, L, T, t
    printf "rollout tok/s vs torch: before %.1f / %.1f = %.2f   after %.1f / %.1f = %.2f\n", bt, t, bt / t, at, t, at / t }'
else
  echo "torch peer: not run ($PYTHON cannot import torch + numpy; scripts/install-deps.sh --bench)"
fi
