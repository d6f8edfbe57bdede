#!/usr/bin/env bash
# Training-step benchmark: trustee's forward+backward and AdamW step beside an eager PyTorch
# autograd Qwen3 (bench/torch_train.py): same random model, same batch (the same ids), same thread
# count, one run.
#
#   bench/train.sh            (a few minutes on 2 cores)
#
# Settings (environment variables, defaults in brackets):
#   TRUSTEE       the binary [build/trustee; built with cmake when missing]
#   PYTHON        python with torch + numpy [/usr/bin/python3; scripts/install-deps.sh --bench]
#   HIDDEN LAYERS HEADS KV_HEADS HEAD_DIM INTERMEDIATE   model shape [256 4 4 2 64 768]
#   TIE           1: lm_head is the embedding, 0: a separate lm_head [1]
#   SHAPES        batch x seq_len pairs ["1x128 4x128 4x512"]
#   STEPS         timed steps per run (after one untimed warm-up step) [3]
#   THREADS [2]   SEED [1]   RUNS: runs of each side per shape, alternating, best kept [2]
# Definitions (both sides): fwd_bwd tok/s = B*T*STEPS / seconds of (zero grads + forward + token-
# mean NLL over positions 1..T-1 + backward); optim ms = mean time of (global grad-norm clip 1.0 +
# AdamW step, weight decay 0.01 on the layers' matrices). trustee computes the LM head and
# log-softmax in chunks of loss rows; torch materializes (B, T, V) logits as eager code does.
# Both sides print the loss of the warm-up step on the same ids: the loss_first columns must agree.
# OMP_WAIT_POLICY is passed through to trustee as set; the torch peer sets PASSIVE unless it is set,
# and pins OPENBLAS_NUM_THREADS / OMP_NUM_THREADS to THREADS (see bench/torch_qwen3.py).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
TRUSTEE=${TRUSTEE:-$SRC/build/trustee}
PYTHON=${PYTHON:-/usr/bin/python3}
HIDDEN=${HIDDEN:-256} LAYERS=${LAYERS:-4} HEADS=${HEADS:-4} KV_HEADS=${KV_HEADS:-2}
HEAD_DIM=${HEAD_DIM:-64} INTERMEDIATE=${INTERMEDIATE:-768} TIE=${TIE:-1}
SHAPES=${SHAPES:-"1x128 4x128 4x512"} STEPS=${STEPS:-3} THREADS=${THREADS:-2} SEED=${SEED:-1} RUNS=${RUNS:-2}

DTYPE=f32 # the learner trains F32 weights
BENCH_NAME=bench/train.sh
# shellcheck source=bench/common.sh
source "$SRC/bench/common.sh"
if [ "$have_torch" = 1 ]; then
  echo "torch:   $("$PYTHON" -c 'import torch; print(torch.__version__)') (eager autograd, float32, OpenBLAS)," \
       "$PYTHON, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}"
fi
params=$(sed -n 's/^parameters: //p' "$tmp/init.log")
echo "model:   hidden $HIDDEN, layers $LAYERS, heads $HEADS, kv-heads $KV_HEADS, head-dim $HEAD_DIM," \
     "intermediate $INTERMEDIATE, vocab 151936, tie $TIE, $params parameters, random init (seed $SEED)"
echo "run:     $STEPS timed steps after 1 warm-up, threads $THREADS, best of $RUNS alternating runs per side"
echo

field() { sed -n "s/.*[[:space:]]$1=\([0-9.eE+-]*\).*/\1/p" <<<"$2"; }
# best of two numbers; $3 = max or min
best() { awk -v a="$1" -v b="$2" -v m="$3" 'BEGIN { if (a == "") print b; else if (b == "") print a;
  else if ((m == "max") == (a + 0 >= b + 0)) print a; else print b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
num() { if [ -n "$1" ]; then printf "%.1f" "$1"; else printf -- "-"; fi; }
row() { printf "%9s | %10s %10s %6s | %10s %10s %6s | %8s %8s\n" "$@"; }

rows=()
for shape in $SHAPES; do
  B=${shape%x*} T=${shape#*x}
  args=(--model "$tmp/model" --batch "$B" --seq-len "$T" --steps "$STEPS" --seed "$SEED" --threads "$THREADS")
  of="" oo="" tf="" to="" ol="" tl=""
  for ((run = 1; run <= RUNS; run++)); do
    ours=$("$TRUSTEE" bench-train "${args[@]}" 2>"$tmp/err") || { cat "$tmp/err" >&2; die "trustee bench-train failed at $shape"; }
    ours=$(grep '^bench-train ' <<<"$ours" | tail -1) || true
    [ -n "$ours" ] || die "trustee bench-train printed no 'bench-train ...' line at $shape"
    echo "$ours"
    of=$(best "$of" "$(field fwd_bwd_tok_s "$ours")" max) oo=$(best "$oo" "$(field optim_step_ms "$ours")" min)
    ol=$(field loss_first "$ours")
    if [ "$have_torch" = 1 ]; then
      theirs=$("$PYTHON" "$SRC/bench/torch_train.py" "${args[@]}" 2>"$tmp/err") || { cat "$tmp/err" >&2; die "torch peer failed at $shape"; }
      theirs=$(grep '^torch ' <<<"$theirs" | tail -1) || true
      [ -n "$theirs" ] || die "the torch peer printed no 'torch ...' line at $shape"
      echo "$theirs"
      tf=$(best "$tf" "$(field fwd_bwd_tok_s "$theirs")" max) to=$(best "$to" "$(field optim_step_ms "$theirs")" min)
      tl=$(field loss_first "$theirs")
    fi
  done
  rows+=("$(row "$shape" "$(num "$of")" "$(num "$tf")" "$(ratio "$of" "$tf")" "$(num "$oo")" "$(num "$to")" "$(ratio "$to" "$oo")" "${ol:--}" "${tl:--}")")
done

echo
echo "fwd+bwd: tokens/s (best of $RUNS), higher is better, ratio = trustee / torch"
echo "optim:   ms per AdamW step incl. grad-norm clip (best of $RUNS), lower is better, ratio = torch / trustee"
printf "%9s | %-28s | %-28s | %s\n" "" "fwd+bwd tok/s" "optim step ms" "loss (warm-up step)"
row "BxT" trustee torch ratio trustee torch ratio trustee torch
echo "----------+------------------------------+------------------------------+------------------"
printf "%s\n" "${rows[@]}"
