#!/bin/bash
# trustee grad against the independent PyTorch references in tests/data/qwen3-tiny: both cases
# (sft, grpo), F32 and BF16 weights, the untied split (an untied copy made here), checkpointing
# giving the same bytes, and bad case files failing with one clear error.
set -u
D=$DATA/qwen3-tiny
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail=0
mkdir -p "$W/f32" "$W/bf16"
cp "$D/config.json" "$W/f32/" && cp "$D/model-f32.safetensors" "$W/f32/model.safetensors"
cp "$D/config.json" "$D/model.safetensors" "$W/bf16/"
"$PYTHON" "$SRC/tests/grad_untie.py" "$D/config.json" "$D/model-f32.safetensors" "$W/untied" || exit 1

check() { # name model case ref [extra trustee args]
    local name=$1 model=$2 case=$3 ref=$4
    shift 4
    if ! "$TRUSTEE" grad --model "$model" --case "$D/$case.json" --out "$W/$name.st" --threads 2 "$@" > "$W/$name.log"; then
        echo "FAIL $name: trustee grad failed"; fail=1; return
    fi
    printf '%-22s ' "$name"
    "$PYTHON" "$SRC/tests/grad_check.py" "$W/$name.st" "$D/$ref" "$D/$case.json" "$W/$name.log" 1e-3 || fail=1
}
for c in sft grpo; do
    check "$c-f32" "$W/f32" $c $c-grads.safetensors
    check "$c-bf16" "$W/bf16" $c $c-grads.safetensors
    check "$c-untied" "$W/untied" $c $c-grads-untied.safetensors
    check "$c-f32-checkpoint" "$W/f32" $c $c-grads.safetensors --checkpoint
    if ! cmp -s "$W/$c-f32.st" "$W/$c-f32-checkpoint.st"; then
        echo "FAIL $c: checkpointing changed the gradients"; fail=1
    else
        echo "$c: checkpointing gives byte-identical gradients"
    fi
done
grep -E "^(loss|grad_norm|kl_mean|clip_frac|ratio_min|ratio_max)" "$W/grpo-f32.log" | tr '\n' ' '; echo

# bad case files: each must fail (exit 1) with one line naming the file and the key
bad() { # name expected-substring python-edit
    local name=$1 want=$2 edit=$3
    "$PYTHON" - "$D/grpo.json" "$W/$name.json" "$edit" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[3])
open(sys.argv[2], "w").write(json.dumps(d).replace('"__nan__"', "NaN"))
PY
    "$TRUSTEE" grad --model "$W/f32" --case "$W/$name.json" --out "$W/bad.st" > /dev/null 2> "$W/$name.err"
    local rc=$?
    local msg; msg=$(cat "$W/$name.err")
    if [ $rc -ne 1 ] || [[ "$msg" != *"$name.json"* ]] || [[ "$msg" != *"$want"* ]] || [ "$(wc -l < "$W/$name.err")" -ne 1 ]; then
        echo "FAIL bad case $name: exit $rc, message: $msg"; fail=1
    else
        echo "bad case $name -> $msg"
    fi
}
bad short_row "old_logprobs" 'd["old_logprobs"][1] = d["old_logprobs"][1][:-1]'
bad short_adv "advantages" 'd["advantages"] = d["advantages"][:3]'
bad nan_adv "advantages" 'd["advantages"][2] = None'
bad nan_json "invalid JSON" 'd["advantages"][2] = "__nan__"'
bad empty_mask "empty" 'd["response_mask"] = [[0]*len(r) for r in d["response_mask"]]'
bad vocab "outside the vocabulary" 'd["input_ids"][0][3] = 5000'
bad no_ids "input_ids" 'del d["input_ids"]'
bad no_old "old_logprobs" 'del d["old_logprobs"]'
bad kind "kind" 'd["kind"] = "dpo"'
bad mask_val "response_mask" 'd["response_mask"][0][7] = 2'
exit $fail
