#!/usr/bin/env bash
# trustee sft: overfits one short tool-calling chat (loss < 0.05 within 64 steps) in the default
# --render episode layout (every assistant turn after the thinking-off generation prompt, as in
# rollouts; --render hf renders the same line 4 tokens shorter: no empty think block before the
# tool call), the written checkpoint opens in `trustee generate` and replays the trained replies
# greedily from thinking-off prompts in that layout, its safetensors
# header is what HF expects (checked by an independent parser), gradient accumulation over
# micro-batches equals one big batch, and bad JSONL is refused with file:line.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$TRUSTEE" init-model --out m0 --hidden 64 --layers 2 --heads 4 --kv-heads 2 --head-dim 16 \
  --intermediate 128 --dtype f32 --seed 3 >/dev/null

TOOLS='[{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather for a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]'
SYS='{"role": "system", "content": "You are a helpful assistant with access to tools."}'
USER='{"role": "user", "content": "What is the weather in Paris right now?"}'
CALL='{"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}'
RESULT='{"role": "tool", "content": "{\"temp_c\": 18, \"sky\": \"cloudy\"}"}'
ANSWER_TEXT='It is 18 degrees and cloudy in Paris.'
ANSWER="{\"role\": \"assistant\", \"content\": \"$ANSWER_TEXT\"}"
echo "{\"messages\": [$SYS, $USER, $CALL, $RESULT, $ANSWER], \"tools\": $TOOLS, \"enable_thinking\": false}" >chat.jsonl

# ---- overfit ----
"$TRUSTEE" sft --model m0 --data chat.jsonl --out m1 --steps 64 --lr 1e-2 --min-lr 5e-3 --batch 1 --seed 1 --threads 2 >sft.log
grep -E '^step (1|10|20|30|40|50|60|64)/' sft.log
tail -1 sft.log
last=$(grep '^step 64/64 ' sft.log | sed 's/.* loss \([0-9.eE+-]*\) .*/\1/')
[ -n "$last" ] || fail "no step 64 line in the sft log"
awk -v l="$last" 'BEGIN { exit !(l < 0.05) }' || fail "loss after 64 steps is $last, expected < 0.05"
echo "ok: SFT loss at step 64 = $last (< 0.05)"

# the layouts: the episode render has the empty think block (4 ids) before the tool call too
"$TRUSTEE" sft --model m0 --data chat.jsonl --out hf1 --render hf --steps 1 --batch 1 --threads 2 >hf.log
n_ep=$(head -1 sft.log | sed 's/.* transcripts, \([0-9]*\) tokens.*/\1/')
n_hf=$(head -1 hf.log | sed 's/.* transcripts, \([0-9]*\) tokens.*/\1/')
grep -q 'episode layout' sft.log && grep -q 'hf layout' hf.log || fail "layout not reported"
[ "$n_ep" -eq $((n_hf + 4)) ] || fail "episode render $n_ep tokens, hf render $n_hf: expected 4 more"
echo "ok: episode layout $n_ep tokens = hf layout $n_hf + 4 (the empty think block of the tool-call turn)"
if "$TRUSTEE" sft --model m0 --data chat.jsonl --out bad --render jinja --steps 1 2>err.txt; then fail "--render jinja accepted"; fi
grep -q 'expected episode or hf' err.txt || { cat err.txt >&2; fail "wrong --render error"; }

# ---- the checkpoint: trustee generate replays the trained replies (greedy, thinking off) ----
# the tool-call turn: the thinking-off generation prompt (same in both layouts)
echo "{\"messages\": [$SYS, $USER], \"tools\": $TOOLS, \"add_generation_prompt\": true, \"enable_thinking\": false}" >p_call.json
out=$("$TRUSTEE" generate --model m1 --chat p_call.json --max-tokens 40 2>gen.err)
grep -q 'get_weather' <<<"$out" && grep -q '"city": "Paris"' <<<"$out" || fail "greedy tool-call turn: '$out'"
grep -q 'tool calls in the reply: 1' gen.err || { cat gen.err >&2; fail "the tool call did not parse"; }
echo "ok: greedy tool-call turn parses: $(tr '\n' ' ' <<<"$out")"
# the final answer: the episode as a rollout has it after the tool result (written out by hand
# from the template rules; HF's --chat render would drop the first turn's empty think block)
TOOL1=$(sed 's/^\[\(.*\)\]$/\1/' <<<"$TOOLS")
printf -v P_ANSWER '%s' \
  "<|im_start|>system
You are a helpful assistant with access to tools.

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
$TOOL1
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{\"name\": <function-name>, \"arguments\": <args-json-object>}
</tool_call><|im_end|>
<|im_start|>user
What is the weather in Paris right now?<|im_end|>
<|im_start|>assistant
<think>

</think>

<tool_call>
{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}
</tool_call><|im_end|>
<|im_start|>user
<tool_response>
{\"temp_c\": 18, \"sky\": \"cloudy\"}
</tool_response><|im_end|>
<|im_start|>assistant
<think>

</think>

"
# the hand-written layout + the answer is the whole trained transcript (same token count)
n_txt=$(printf '%s%s<|im_end|>\n' "$P_ANSWER" "$ANSWER_TEXT" | "$TRUSTEE" tokenize | wc -w)
[ "$n_txt" -eq "$n_ep" ] || fail "the hand-written episode text has $n_txt tokens, the episode render $n_ep"
out=$("$TRUSTEE" generate --model m1 --prompt "$P_ANSWER" --max-tokens 32 2>/dev/null)
[ "$out" = "$ANSWER_TEXT" ] || fail "greedy reply after the tool result: '$out', expected '$ANSWER_TEXT'"
echo "ok: greedy final answer = '$out'"

# ---- the checkpoint as HF sees it (independent parser: names, F32, shapes from config.json) ----
PY=${TORCH_PYTHON:-/usr/bin/python3}
"$PY" - m1 <<'PYEOF'
import json, struct, sys
d = sys.argv[1]
cfg = json.load(open(d + "/config.json"))
blob = open(d + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", blob[:8])[0]
hdr = json.loads(blob[8:8 + n]); hdr.pop("__metadata__", None)
C, I, L, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
H, K, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
want = {"model.embed_tokens.weight": [V, C], "model.norm.weight": [C]}
for l in range(L):
    p = "model.layers.%d." % l
    want.update({p + "input_layernorm.weight": [C], p + "post_attention_layernorm.weight": [C],
                 p + "self_attn.q_proj.weight": [H * D, C], p + "self_attn.k_proj.weight": [K * D, C],
                 p + "self_attn.v_proj.weight": [K * D, C], p + "self_attn.o_proj.weight": [C, H * D],
                 p + "self_attn.q_norm.weight": [D], p + "self_attn.k_norm.weight": [D],
                 p + "mlp.gate_proj.weight": [I, C], p + "mlp.up_proj.weight": [I, C], p + "mlp.down_proj.weight": [C, I]})
if not cfg.get("tie_word_embeddings"):
    want["lm_head.weight"] = [V, C]
got = {k: v["shape"] for k, v in hdr.items()}
assert got == want, "tensor names/shapes differ: missing %s, extra %s" % (sorted(set(want) - set(got)), sorted(set(got) - set(want)))
assert all(v["dtype"] == "F32" for v in hdr.values()), "expected F32 tensors"
assert cfg["torch_dtype"] == "float32" and cfg["model_type"] == "qwen3", cfg
print("ok: %s/model.safetensors holds the %d HF Qwen3 tensors, F32, shapes as config.json says" % (d, len(got)))
PYEOF
[ -s m1/tokenizer.json ] && [ -s m1/tokenizer_config.json ] || fail "tokenizer files missing from m1"

# ---- gradient accumulation: batch 2 in micro-batches of 1 == one micro-batch of 2 ----
USER2='{"role": "user", "content": "Say hello."}'
echo "{\"messages\": [$SYS, $USER2, {\"role\": \"assistant\", \"content\": \"Hello! How can I help you today?\"}], \"enable_thinking\": false}" >>chat.jsonl
"$TRUSTEE" sft --model m0 --data chat.jsonl --out acc1 --steps 3 --lr 1e-3 --batch 2 --micro-batch 1 >acc1.log
"$TRUSTEE" sft --model m0 --data chat.jsonl --out acc2 --steps 3 --lr 1e-3 --batch 2 --micro-batch 2 >acc2.log
l1=$(grep '^step 3/3 ' acc1.log | sed 's/.* loss \([0-9.eE+-]*\) .*/\1/')
l2=$(grep '^step 3/3 ' acc2.log | sed 's/.* loss \([0-9.eE+-]*\) .*/\1/')
awk -v a="$l1" -v b="$l2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * b) }' ||
  fail "step-3 loss with micro-batches of 1: $l1, with one micro-batch of 2: $l2"
echo "ok: gradient accumulation: step-3 loss $l1 (micro-batch 1) vs $l2 (micro-batch 2)"

# ---- bad input ----
printf '%s\n{"messages": [oops\n' "$(head -1 chat.jsonl)" >bad.jsonl
if "$TRUSTEE" sft --model m0 --data bad.jsonl --out bad --steps 1 2>err.txt; then fail "malformed JSONL accepted"; fi
grep -q 'bad.jsonl:2: invalid JSON' err.txt || { cat err.txt >&2; fail "error does not name bad.jsonl:2"; }
echo "ok: $(cat err.txt)"
echo "{\"messages\": [$SYS, $USER]}" >noasst.jsonl
if "$TRUSTEE" sft --model m0 --data noasst.jsonl --out bad --steps 1 2>err.txt; then fail "no assistant tokens accepted"; fi
grep -q 'noasst.jsonl:1: no assistant tokens' err.txt || { cat err.txt >&2; fail "wrong error"; }
echo "ok: $(cat err.txt)"
if "$TRUSTEE" sft --model m0 --data chat.jsonl --out m1 --steps 1 2>err.txt; then fail "overwrote a checkpoint without --force"; fi
echo "ok: $(cat err.txt)"
echo "sft_learn: PASS"
