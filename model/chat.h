// Qwen3 chat format: rendering straight to token ids (append-only), and parsing assistant output.
//
// The format is the official Qwen3 chat template (model/data/qwen3-tokenizer/tokenizer_config.json,
// "chat_template"). A conversation is built incrementally in a chat_t; every message is rendered
// into its own token segment the moment it is added, so the ids only ever grow: the ids after
// message k+1 extend the ids after message k exactly, and no token is ever re-tokenized.
//
//   <|im_start|>system\n{system}\n\n# Tools ... <tools>\n{tool}\n{tool}\n</tools> ... <|im_end|>\n
//   <|im_start|>user\n{content}<|im_end|>\n
//   <|im_start|>assistant\n[<think>\n{reasoning}\n</think>\n\n]{content}[\n]<tool_call>\n
//       {"name": "{name}", "arguments": {args}}\n</tool_call><|im_end|>\n
//   <|im_start|>user\n<tool_response>\n{tool 1}\n</tool_response>\n<tool_response>\n...<|im_end|>\n
//   <|im_start|>assistant\n[<think>\n\n</think>\n\n]            <- generation prompt (thinking off)
//
// Token segments: template special tokens (<|im_start|>, <|im_end|>, <think>, </think>,
// <tool_call>, </tool_call>, <tool_response>, </tool_response>) are pushed by id; the text between
// two of them (template text + message content together) is tokenized as one piece, exactly the
// piece HF's render-then-tokenize sees, because added tokens always split the text first.
// Literal special-token text inside content (e.g. "<|im_end|>" in a tool response) becomes that
// special token, as in HF. Text is NFC-normalized piece by piece (template text | content), which
// equals NFC of the whole piece because every template string next to content ends or starts with
// a character that composes with nothing. Verified: the 5 reference renders, 300 random
// conversations against tokenize(whole text) (tests/test_chat.c) and 400 random HF contexts against
// jinja2 + HF tokenizers (tests/chat_template_check.py).
// Where ids can differ from HF's render-then-tokenize of the whole conversation:
//  - an assistant reply continuing the generation prompt (chat_add_assistant_ids, or
//    chat_add_assistant while the prompt is open) is its own piece: sampled ids are kept as
//    sampled (they need not be the canonical BPE of their text), and a reply that starts with
//    whitespace would merge with the prompt's trailing "\n" / "\n\n" in a whole-text render
//    ("</think>\n\n" + "\nhi": "\n\n\n" is one pre-token there);
//  - HF re-renders history: it drops <think> blocks of assistant turns before the last user query,
//    and renders the empty "<think>\n\n</think>\n\n" only for the LAST assistant turn. A growing
//    episode keeps every turn exactly as the policy saw it (generation prompt + its sampled ids),
//    so with thinking off our ids keep the empty think block of every earlier assistant turn, and
//    with thinking on they keep earlier reasoning. Append-only is the point (token-in, token-out);
//    HF-exact history rendering is available through the JSON loader, which sees all messages;
//    chat_load_json_episode renders a JSON conversation the append-only way instead.
//
// Per-token mask (parallel to the ids): 1 = produced by the assistant: its content, reasoning (when
// non-empty), tool-call blocks, and its closing <|im_end|>; 0 = everything else (template text,
// the generation prompt incl. the empty think block, the "\n" after <|im_end|>, other roles).
// For assistant turns from sampled ids the mask is 1 on exactly the sampled ids. A token of a text
// piece that mixes mask-0 and mask-1 bytes (only possible when a reply starts with whitespace that
// merges with template text) gets mask 0 and is counted in n_straddle.
// A user turn of tool responses stays open (no <|im_end|>\n yet) until the next message, the
// generation prompt or chat_flush closes it: read c->ids as a prompt only after
// chat_begin_assistant.
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

// ---- rendering ----

// one tool call of an assistant message. arguments: a JSON object (or any non-string value) is
// written with chat_json_dumps (the template's tojson); a JSON string is inserted verbatim.
typedef struct {
    const char *name;
    const json_t *arguments;
} chat_call_t;

// how an assistant text message's <think> block is rendered (HF template rules)
typedef enum {
    CHAT_THINK_AUTO = 0, // only when reasoning is non-empty (a turn after the last user query)
    CHAT_THINK_DROP,     // never (template: a turn before the last user query)
    CHAT_THINK_KEEP,     // always, even empty (template: the last message, after the last query)
} chat_think_t;

// the template's special tokens (Qwen3 ids in comments), looked up by text at chat_init
enum {
    CHAT_SP_IM_START,          // <|im_start|>     151644
    CHAT_SP_IM_END,            // <|im_end|>       151645
    CHAT_SP_TOOL_CALL,         // <tool_call>      151657
    CHAT_SP_TOOL_CALL_END,     // </tool_call>     151658
    CHAT_SP_TOOL_RESPONSE,     // <tool_response>  151665
    CHAT_SP_TOOL_RESPONSE_END, // </tool_response> 151666
    CHAT_SP_THINK,             // <think>          151667
    CHAT_SP_THINK_END,         // </think>         151668
    CHAT_SP_N
};

typedef struct {
    const tokenizer_t *tok; // NULL: text-only rendering (ids and mask stay empty)
    int enable_thinking;    // generation prompt: 0 appends "<think>\n\n</think>\n\n" (default 0)

    ids_t ids;     // (n) rendered ids, append-only
    uint8_t *mask; // (n) 1 = produced by the assistant
    int mask_cap;
    char *text;    // the rendered text (NUL-terminated), append-only like ids
    size_t text_len, text_cap;

    // internal state
    char *system;         // first system message, held until the header is written
    json_t *tools;        // array of tool schemas, held until the header is written
    int header_done;      // the system/tools turn has been written (or will never be)
    int n_messages;       // messages added so far (incl. the first system message)
    int tool_turn_open;   // a user turn of tool responses is open (its <|im_end|>\n is pending)
    int assistant_open;   // the generation prompt is written, the assistant body is pending
    int n_straddle;       // tokens that mixed mask-0 and mask-1 bytes (given mask 0)
    int32_t sp[CHAT_SP_N]; // special token ids by CHAT_SP_* (e.g. sp[CHAT_SP_IM_END]: the stop id)
} chat_t;

// tok may be NULL (text only). Looks up and checks the special token ids.
int chat_init(chat_t *c, const tokenizer_t *tok);
void chat_free(chat_t *c);

// the first system message (before anything else) goes into the header turn together with the
// tools; later system messages are rendered as their own turns (as the template does)
int chat_add_system(chat_t *c, const char *content);
// tools: a JSON array of tool schemas (OpenAI function format objects, any JSON is rendered as
// given); the chat keeps its own reference. Only before the header is written (any non-system
// message, the generation prompt, or chat_flush writes it). An empty array means no tools.
int chat_set_tools(chat_t *c, const json_t *tools);
int chat_set_tools_json(chat_t *c, const char *json_text); // same, from JSON text
int chat_add_user(chat_t *c, const char *content);
// a tool response; consecutive tool messages share one user turn
int chat_add_tool(chat_t *c, const char *content);

// an assistant message from text. With the generation prompt open (chat_begin_assistant), the
// content is appended after it as if the model had generated it (reasoning must be NULL then).
// Otherwise it is rendered as the template renders history: reasoning NULL means "none given"
// (a "<think>...</think>" inside content is split out as the template does), `think` picks whether
// the <think> block is written. content may be NULL ("").
int chat_add_assistant(chat_t *c, const char *content, const chat_call_t *calls, int n_calls);
int chat_add_assistant_ex(chat_t *c, const char *content, const char *reasoning,
                          const chat_call_t *calls, int n_calls, chat_think_t think);

// writes the generation prompt "<|im_start|>assistant\n" (+ the empty think block when
// enable_thinking is 0); afterwards c->ids is the prompt to sample from. Idempotent while open.
int chat_begin_assistant(chat_t *c);
// appends the sampled ids of the open assistant turn (opens it first if needed), mask 1, then
// closes the turn: <|im_end|> (mask 0 when it was not the last sampled id: truncated) + "\n".
int chat_add_assistant_ids(chat_t *c, const int32_t *ids, int n);
// writes whatever is pending (header, open tool turn) so c->ids/c->text hold the full conversation
int chat_flush(chat_t *c);
// chat_begin_assistant, then copies the prompt ids (all of c->ids) into out (cleared first)
int chat_render_gen_prompt(chat_t *c, ids_t *out);

// loads an HF-style conversation: {"messages":[...], "tools":[...], "add_generation_prompt":b,
// "enable_thinking":b} or a bare list of messages, and renders it exactly like the HF template
// (last-query <think> rules included). Defaults when absent: add_generation_prompt true (this
// loader exists to make prompts; HF's default is false), enable_thinking true (HF's default).
// c must be freshly initialized. Message fields: role, content (string or null), reasoning_content,
// tool_calls ([{"type":"function","function":{"name":..,"arguments":obj|string}}] or the bare
// {"name","arguments"} form). `name` names the source in errors.
int chat_load_json(chat_t *c, const json_t *root, const char *name);
// the same JSON rendered the way a rollout builds an episode (append-only), not the HF way: every
// assistant message is chat_begin_assistant (the generation prompt, with the empty think block
// when thinking is off) followed by the message appended as generated text (chat_add_assistant
// with the prompt open: content, then its tool-call blocks, then <|im_end|>). So the ids equal
// those of an episode whose policy sampled the canonical tokens of each reply, and the mask is 1
// on exactly those tokens. No last-query rules: every turn keeps its layout. A non-empty
// reasoning_content becomes "<think>\n{reasoning}\n</think>\n\n" at the start of the generated
// text (thinking on only; refused with thinking off). Defaults: enable_thinking FALSE (the
// rollout default), add_generation_prompt true as above.
int chat_load_json_episode(chat_t *c, const json_t *root, const char *name);
int chat_load_file(chat_t *c, const char *path);

// Python json.dumps(v, ensure_ascii=False) (separators ", " and ": ", keys in jansson's insertion
// order, floats as Python repr): the template's tojson. Returns malloc'd text or NULL (err_set).
char *chat_json_dumps(const json_t *v);

// ---- parsing assistant output ----

typedef enum {
    CHAT_CALL_OK = 0,
    CHAT_CALL_BAD_JSON,              // the text inside the tags is not JSON
    CHAT_CALL_MISSING_NAME,          // not an object, or "name" missing / not a non-empty string
    CHAT_CALL_ARGUMENTS_NOT_OBJECT,  // "arguments" missing or not an object
    CHAT_CALL_UNCLOSED_TAG,          // <tool_call> without </tool_call> (truncated output)
} chat_call_status_t;
const char *chat_call_status_name(chat_call_status_t s);

typedef struct {
    chat_call_status_t status;
    char *name;        // NULL when missing (also filled for UNCLOSED_TAG when the JSON is complete)
    json_t *arguments; // the "arguments" value whatever its type (owned), NULL when absent
    char *raw;         // the text between the tags, as written
    size_t raw_len;
} chat_parsed_call_t;

typedef struct {
    char *content;   // text outside the think block and the tool-call blocks, whitespace-trimmed
    size_t content_len;
    char *reasoning; // the <think> block's text ('\n'-trimmed), NULL when there is none
    int think_unclosed; // "<think>" without "</think>": everything after it went to reasoning
    chat_parsed_call_t *calls;
    int n_calls;
} chat_parsed_t;

// parses assistant text (e.g. decoded sampled ids, without <|im_end|>): an optional reasoning part
// (a leading "<think>" up to the first "</think>", or, as when the prompt opened the block, any
// text up to a "</think>" that comes before every "<tool_call>"), then text and
// <tool_call>...</tool_call> blocks in any number and order. Calls inside the reasoning are not
// parsed. A <tool_call> that meets another <tool_call> before its </tool_call> is UNCLOSED and
// ends there. The JSON between the tags is parsed after trimming whitespace (jansson: strict JSON,
// integers must fit in 64 bits). Never fails on malformed input, also not on NUL bytes or invalid
// UTF-8 (returns -1 only when out of memory). *out is always initialized; free it with
// chat_parsed_free.
int chat_parse_assistant(const char *text, size_t len, chat_parsed_t *out);
void chat_parsed_free(chat_parsed_t *p);
