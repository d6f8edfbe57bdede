// sim/grammar: constrained JSON decoding. A JSON schema (the subset the LM roles need) compiles to
// a deterministic byte automaton; per automaton state, the set of token ids whose bytes the state
// can consume is computed once (lazily, on first visit) and cached, so masking a sampled token's
// logits is a hash lookup + one pass over the vocabulary row (for states that allow only a few
// tokens, a fill of -INF around their cached list, which the engine hook also hands to the sampler).
//
// Language accepted (compact JSON: no whitespace anywhere outside strings):
//   object with "properties"  -> every property, in schema order, each exactly once ("required" is
//                                not needed: optional properties are always emitted too)
//   object without properties -> any JSON object, depth <= any_depth, <= any_items members per
//                                object/array, keys <= any_key_len bytes, strings <= any_str_len
//   string                    -> "..." with at most maxLength BYTES of encoded body (escapes
//                                counted as written, so the decoded length in code points is
//                                <= maxLength as the schema wants); escapes \" \\ \/ \b \f \n \r \t
//                                only (no \u); raw UTF-8 must be valid (RFC 3629: no overlongs,
//                                no surrogates); no raw control bytes. Default maxLength:
//                                opts.max_string.
//   enum (any types)          -> exactly one of the values, written as compact JSON text
//   integer                   -> -?(0|[1-9][0-9]*), at most opts.max_digits digits, no '-' when
//                                minimum >= 0; a range with maximum - minimum <= 64 becomes an
//                                enum of its values (exact); wider ranges are bounded by sign and
//                                digit count only (the validator, sim/jsonschema.h, checks them)
//   number                    -> an integer as above, optionally '.' + 1..opts.max_frac digits
//   boolean / null            -> true|false / null
//   array with "items"        -> [] with minItems..maxItems (default maxItems: opts.max_items)
//   no "type"                 -> any JSON value (depth any_depth)
//
// Budget: each state knows its closing string C(s) (a deterministic minimal completion, chosen
// byte by byte, so the closing of a state reached along C(s) is the rest of C(s)) and T(s), the
// number of tokens of C(s) cut greedily into the longest vocabulary tokens. The first of those is
// t0(s). With R tokens left (the one being sampled included) a sequence may sample any consumable
// token when every consumable token t leads to T(s after t) <= R - 1 (max_t, cached per state);
// otherwise only t0(s). Since T(s after t0) = T(s) - 1, the invariant T(s) <= R holds throughout,
// and the JSON always closes within the budget when T(start) <= max_new_tokens (checked).
// Once the value is complete only the end ids (e.g. <|im_end|>) are allowed.
//
// Mask cache key: the automaton state, except the byte count of a string being written (the top
// frame): for such states the cache holds, per token, the number of string bytes it needs
// (bytes up to its closing quote, or all its bytes plus the room a split UTF-8 character or
// escape still needs), compared at sampling time with the bytes left. Other states hold a bitset.
// Thread-safe: one mutex around the cache (the engine samples sequences in parallel).
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/tokenizer.h"

#define GRAM_MAX_DEPTH 12

// the vocabulary as byte strings, shared by every grammar of one tokenizer
typedef struct gram_vocab gram_vocab_t;

// V: the model's vocabulary size (logit row length, >= tokenizer ids). Ids at or after n_plain
// (added/special tokens) and ids without bytes are never allowed inside JSON. end_ids: the ids
// allowed once the value is complete (e.g. <|im_end|>).
gram_vocab_t *gram_vocab_new(const tokenizer_t *tok, int V, int n_plain, const int32_t *end_ids,
                             int n_end);
// the Qwen3 setup: plain ids = ids before "<|endoftext|>", end id "<|im_end|>"
gram_vocab_t *gram_vocab_qwen(const tokenizer_t *tok, int V);
void gram_vocab_free(gram_vocab_t *v);
int gram_vocab_size(const gram_vocab_t *v);

typedef struct {
    int max_string;  // maxLength when a string schema has none (default 128)
    int max_items;   // maxItems when an array schema has none (default 8)
    int max_digits;  // integer digits (default 9)
    int max_frac;    // fraction digits of numbers (default 4)
    int any_depth;   // nesting of "any" objects/arrays (default 3: {"a":{"b":[1]}})
    int any_items;   // members per "any" object / array (default 8)
    int any_key_len; // key bytes in "any" objects (default 32)
    int any_str_len; // string bytes in "any" values (default 64)
} gram_opts_t;
void gram_opts_default(gram_opts_t *o);

typedef struct gram gram_t;

// compiles a schema (opts NULL: defaults); vocab may be NULL (byte automaton only: no masks).
// Unsupported schema parts are errors that name the JSON path ("schema.properties.x: ...").
gram_t *gram_compile(const json_t *schema, const gram_opts_t *opts, gram_vocab_t *vocab);
void gram_free(gram_t *g);

// ---- the byte automaton ----

typedef struct {
    uint16_t node;  // grammar node
    uint8_t phase;  // node-specific position
    uint8_t u8;     // string: UTF-8 continuation bytes still due (low 2 bits) | range code << 2
    uint16_t count; // string: body bytes; object: byte in the current piece; array: items; number: digits
    uint16_t x, y;  // enum: candidate range [x, y); number: fraction digits
    uint16_t pad;
} gram_frame_t;

typedef struct {
    int n;                               // frames on the stack; 0 = the value is complete
    gram_frame_t f[GRAM_MAX_DEPTH];
} gram_state_t;

void gram_start(const gram_t *g, gram_state_t *s);
// consumes one byte: 0, or -1 when the byte is not allowed (s is then unspecified)
int gram_step(const gram_t *g, gram_state_t *s, uint8_t c);
// consumes bytes (stops at the first rejected one): 0 or -1
int gram_feed(const gram_t *g, gram_state_t *s, const char *bytes, size_t n);
static inline int gram_done(const gram_state_t *s) { return s->n == 0; }
// 1 when text (len bytes) is exactly a sentence of the grammar
int gram_accepts(const gram_t *g, const char *text, size_t len);
// the closing string of s (malloc'd, NUL-terminated); NULL on error
char *gram_closing(const gram_t *g, const gram_state_t *s, size_t *len);

// ---- token masks and the engine hook ----

typedef struct {
    uint64_t n_states;   // mask cache entries computed
    double precompute_s; // total time spent computing them
    uint64_t n_masks;    // masks applied (sampled tokens)
    double mask_s;       // time spent in the hook (state advance + lookup + apply)
    uint64_t n_forced;   // masks that allowed only the closing token
} gram_stats_t;
void gram_get_stats(gram_t *g, gram_stats_t *st);

// T(start): tokens the shortest closing of an empty output takes; -1 on error (no vocab)
int gram_min_tokens(gram_t *g);

// one sequence being sampled under a grammar (the engine hook's user data)
typedef struct {
    gram_t *g;
    gram_state_t st;
    int max_tokens; // the sequence's max_new_tokens
    int n_fed;      // generated tokens consumed so far
    int finished;   // the value is complete
    int rejected;   // a sampled token did not fit (only with masking bypassed); ends the sequence
} gram_seq_t;

void gram_seq_init(gram_seq_t *q, gram_t *g, int max_tokens);
// consumes generated tokens [q->n_fed, n) (end ids finish it); 0, or -1 when one did not fit
int gram_seq_advance(gram_seq_t *q, const int32_t *generated, int n);
// engine_gen_t.logits_hook: advances over the tokens sampled since the last call, then sets the
// logits of every token not allowed now to -INFINITY. ud: a gram_seq_t.
int gram_logits_hook(void *ud, const int32_t *generated, int n_generated, float *logits, int vocab);
// the same as an engine_gen_t.logits_hook: when the state allows only a few tokens (structure,
// enum values, a forced closing, the end) it also lists them in `allowed` and returns their count,
// so the engine samples over those alone; 0 when the row was masked in full (string bodies)
int gram_engine_hook(void *ud, const int32_t *generated, int n_generated, float *logits, int vocab,
                     int32_t *allowed);
