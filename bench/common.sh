# shellcheck shell=bash disable=SC2034  # sourced: die, have_torch, tmp are used by the caller
# bench/common.sh: the set-up every benchmark script shares (sourced, not run). Expects SRC,
# TRUSTEE, PYTHON, the model shape variables (HIDDEN LAYERS HEADS KV_HEADS HEAD_DIM INTERMEDIATE TIE
# DTYPE SEED) and BENCH_NAME. Builds trustee when missing, checks for the torch peer (have_torch),
# makes a random model in $tmp/model (init log in $tmp/init.log) and prints the machine lines.

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }

if [ ! -x "$TRUSTEE" ]; then
  echo "$BENCH_NAME: $TRUSTEE not found; building it"
  cmake -S "$SRC" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$SRC/build" --target trustee -j "$(nproc)" >/dev/null
  TRUSTEE=$SRC/build/trustee
fi
have_torch=1
if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
  echo "$BENCH_NAME: $PYTHON cannot import torch + numpy (scripts/install-deps.sh --bench); torch columns left empty" >&2
  have_torch=0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tie_flag=(--tie)
[ "$TIE" = 1 ] || tie_flag=(--untie)
"$TRUSTEE" init-model --out "$tmp/model" --hidden "$HIDDEN" --layers "$LAYERS" --heads "$HEADS" \
  --kv-heads "$KV_HEADS" --head-dim "$HEAD_DIM" --intermediate "$INTERMEDIATE" "${tie_flag[@]}" \
  --dtype "$DTYPE" --seed "$SEED" >"$tmp/init.log" 2>&1 || { cat "$tmp/init.log" >&2; die "trustee init-model failed"; }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "machine: $(nproc) cores, ${cpu:-unknown CPU}, $(uname -sr)"
echo "trustee: $TRUSTEE ($("$TRUSTEE" --version 2>/dev/null || echo '?')), OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
