#!/usr/bin/env bash
# Generation benchmark: trustee's prefill and batched greedy decode beside an eager PyTorch Qwen3
# (bench/torch_qwen3.py): same random model, same-sized random prompts, same thread count, one run.
#
#   bench/generate.sh            (about 1-2 minutes on 2 cores)
#
# Settings (environment variables, defaults in brackets):
#   TRUSTEE       the binary [build/trustee; built with cmake when missing]
#   PYTHON        python with torch + numpy [/usr/bin/python3; scripts/install-deps.sh --bench]
#   HIDDEN LAYERS HEADS KV_HEADS HEAD_DIM INTERMEDIATE   model shape [256 4 4 2 64 768]
#   TIE           1: lm_head is the embedding (init-model's default), 0: a separate lm_head [1]
#   DTYPE         weights as stored by init-model: f32 or bf16 [f32]; both sides compute in f32
#   BATCHES       ["1 16 64"]      PROMPT_LEN [128]     GEN_LEN [32]
#   THREADS       [2]              SEED [1]
#   RUNS          runs of each side per batch, alternating; the best tok/s of each is kept [2]
# OMP_WAIT_POLICY is passed through to trustee as set; the torch peer sets PASSIVE unless it is set
# (its OpenMP threads otherwise spin and starve OpenBLAS's; see bench/torch_qwen3.py).
# Definitions (both sides): prefill tok/s = B*L / time of one forward over [B, L] (last-position
# logits); decode tok/s = B*T / time of T one-token steps over [B, 1] with the KV cache, each with
# a greedy argmax over the full vocabulary. Prompt ids: uniform in [0, 151643), seeded (each side
# draws its own; the content does not change the work). Both sides widen the weights to f32 at load.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
TRUSTEE=${TRUSTEE:-$SRC/build/trustee}
PYTHON=${PYTHON:-/usr/bin/python3}
HIDDEN=${HIDDEN:-256} LAYERS=${LAYERS:-4} HEADS=${HEADS:-4} KV_HEADS=${KV_HEADS:-2}
HEAD_DIM=${HEAD_DIM:-64} INTERMEDIATE=${INTERMEDIATE:-768} TIE=${TIE:-1} DTYPE=${DTYPE:-f32}
BATCHES=${BATCHES:-"1 16 64"} PROMPT_LEN=${PROMPT_LEN:-128} GEN_LEN=${GEN_LEN:-32}
THREADS=${THREADS:-2} SEED=${SEED:-1} RUNS=${RUNS:-2}

BENCH_NAME=bench/generate.sh
# shellcheck source=bench/common.sh
source "$SRC/bench/common.sh"
if [ "$have_torch" = 1 ]; then
  echo "torch:   $("$PYTHON" -c 'import torch; print(torch.__version__)') (eager, float32, OpenBLAS), $PYTHON," \
       "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}"
fi
vocab=$(sed -n 's/.*"vocab_size": *\([0-9]*\).*/\1/p' "$tmp/model/config.json" | head -1)
echo "model:   hidden $HIDDEN, layers $LAYERS, heads $HEADS, kv-heads $KV_HEADS, head-dim $HEAD_DIM," \
     "intermediate $INTERMEDIATE, vocab ${vocab:-?}, tie $TIE, weights $DTYPE, random init (seed $SEED)"
echo "run:     prompt_len $PROMPT_LEN, gen_len $GEN_LEN, threads $THREADS, prompt seed $SEED," \
     "best of $RUNS alternating runs per side"
echo

# field NAME LINE -> the number after NAME= in LINE
field() { sed -n "s/.*[[:space:]]$1=\([0-9.eE+-]*\).*/\1/p" <<<"$2"; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "") print b; else if (b == "" || a + 0 >= b + 0) print a; else print b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
num() { if [ -n "$1" ]; then printf "%.1f" "$1"; else printf -- "-"; fi; }
row() { printf "%5s | %10s %10s %6s | %10s %10s %6s\n" "$@"; }

rows=()
for B in $BATCHES; do
  args=(--model "$tmp/model" --batch "$B" --prompt-len "$PROMPT_LEN" --gen-len "$GEN_LEN" --seed "$SEED" --threads "$THREADS")
  op="" od="" tp="" td=""
  for ((run = 1; run <= RUNS; run++)); do
    ours=$("$TRUSTEE" bench-generate "${args[@]}" 2>"$tmp/err") || { cat "$tmp/err" >&2; die "trustee bench-generate failed at batch $B"; }
    ours=$(grep '^bench-generate ' <<<"$ours" | tail -1) || true
    [ -n "$ours" ] || die "trustee bench-generate printed no 'bench-generate ...' line at batch $B"
    echo "$ours"
    op=$(best "$op" "$(field prefill_tok_s "$ours")") od=$(best "$od" "$(field decode_tok_s "$ours")")
    if [ "$have_torch" = 1 ]; then
      theirs=$("$PYTHON" "$SRC/bench/torch_qwen3.py" "${args[@]}" 2>"$tmp/err") || { cat "$tmp/err" >&2; die "torch peer failed at batch $B"; }
      theirs=$(grep '^torch ' <<<"$theirs" | tail -1) || true
      [ -n "$theirs" ] || die "the torch peer printed no 'torch ...' line at batch $B"
      echo "$theirs"
      tp=$(best "$tp" "$(field prefill_tok_s "$theirs")") td=$(best "$td" "$(field decode_tok_s "$theirs")")
    fi
  done
  rows+=("$(row "$B" "$(num "$op")" "$(num "$tp")" "$(ratio "$op" "$tp")" "$(num "$od")" "$(num "$td")" "$(ratio "$od" "$td")")")
done

echo
echo "tokens/s (best of $RUNS), higher is better; ratio = trustee / torch"
printf "%5s | %-28s | %s\n" "" "prefill tok/s" "decode tok/s"
row batch trustee torch ratio trustee torch ratio
echo "------+------------------------------+-----------------------------"
printf "%s\n" "${rows[@]}"
