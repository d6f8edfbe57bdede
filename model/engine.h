// engine: batched generation over one Qwen3 model and one paged KV cache.
//
// Sequences are submitted with engine_add() at any time; every engine_step() runs ONE forward over
// a packed batch: one token for each decoding sequence plus prompt tokens of waiting sequences
// (prefill, chunked when a prompt does not fit the token budget), then samples the next token of
// every sequence whose logits came out. Sequences stop independently (stop ids, stop strings,
// length) and leave the batch; their KV pages go back to the cache at once.
//
// Prefix sharing: engine_add(..., parent) starts a sequence from the cached tokens of another one
// (forking its KV pages) when the prompts share a prefix, so a group of samples of one prompt
// prefills it once. A sequence added with max_new_tokens == 0 only prefills and stays in the
// cache (a parent for forks) until engine_release().
//
// Samples depend only on (seed, stream, step) (see sampler.h), not on the batch composition.
// Under the model's output restriction (qwen3.h) every token comes from the listed ids and its
// log-prob is over them: the learner's distribution (qwen3_train.h).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "kvcache.h"
#include "qwen3.h"
#include "sampler.h"

enum {
    ENGINE_RUNNING = 0,     // more tokens to come
    ENGINE_STOP_ID = 1,     // sampled a stop id (the id is the last token)
    ENGINE_STOP_STRING = 2, // the decoded text now contains a stop string (the token that
                            // completed it is the last token; trimming text is the caller's job)
    ENGINE_STOP_LENGTH = 3, // max_new_tokens reached, or the sequence reached the cache's maximum
    ENGINE_PREFILLED = 4,   // max_new_tokens == 0: prompt cached, kept until engine_release()
};

// default stop ids: <|im_end|> and <|endoftext|> of the Qwen tokenizer
#define ENGINE_N_DEFAULT_STOP_IDS 2
extern const int32_t ENGINE_DEFAULT_STOP_IDS[ENGINE_N_DEFAULT_STOP_IDS];

typedef struct {
    sampler_params_t sampling;
    int max_new_tokens;             // 0: prefill only (see above)
    uint64_t stream;                // RNG stream of this sequence (e.g. a request id)
    const int32_t *stop_ids;        // NULL: ENGINE_DEFAULT_STOP_IDS
    int n_stop_ids;
    int ignore_stop_ids;            // 1: never stop on ids (benchmarks)
    const char *const *stop_strings; // checked on the decoded text (copied by engine_add)
    int n_stop_strings;
    // optional, e.g. constrained decoding: called before each sampling of this sequence with its
    // generated tokens so far and its logits row (vocab), which it may change in place (e.g. -inf
    // on disallowed tokens; engine_last_logits then shows the changed row); the sampled token
    // shows up in the next call's `generated`. Runs on the sampling threads, one call per
    // sequence at a time. The log-prob is then that of the changed row. Returns 0, or n > 0 when
    // it left only n entries finite and listed their ids, ascending, in `allowed` (room for vocab
    // ids): sampling then touches only those (sampler_sample_ids). < 0 fails engine_step.
    // Under an output restriction (qwen3_set_output_vocab) the hook sees a full row with -inf off
    // the list (widening it costs O(vocab) per call: drop hooks that only mask unlisted ids), and
    // sampling keeps to the listed ids (intersected with `allowed` when the hook lists ids).
    int (*logits_hook)(void *ud, const int32_t *generated, int n_generated, float *logits, int vocab,
                       int32_t *allowed);
    void *logits_ud;
} engine_gen_t;

// raw bytes of one token (for stop strings); NULL when the id is unknown.
// tokenizer_token_bytes (model/tokenizer.h) fits through engine_tokenizer_bytes().
typedef const char *(*engine_token_bytes_fn)(const void *ud, int32_t id, size_t *len);
const char *engine_tokenizer_bytes(const void *tokenizer, int32_t id, size_t *len);

typedef struct {
    int max_seqs;         // sequences held at once (running, waiting, kept)
    int max_batch_tokens; // rows of one forward (decode rows + prefill chunk tokens)
    int max_seq_len;      // prompt + generated tokens of one sequence
    int page_size;        // KV page size S (tokens)
    int n_pages;          // KV pages P; 0: enough for max_seqs full-length sequences
    engine_token_bytes_fn token_bytes; // needed only for stop strings
    const void *token_bytes_ud;
} engine_opts_t;

typedef struct {
    int seq;        // handle from engine_add
    int32_t token;  // the sampled token (-1 for ENGINE_PREFILLED)
    float logprob;  // its log-prob (sampler.h)
    int finish;     // ENGINE_RUNNING or the reason it stopped
} engine_event_t;

typedef struct engine engine_t;

engine_t *engine_new(const qwen3_t *m, const engine_opts_t *opts); // NULL on error (err_msg)
void engine_free(engine_t *e);

// queues a sequence; returns its handle (>= 0) or -1. parent: a handle whose cached tokens may
// share a prefix with this prompt (-1: none). The prompt needs at least one token.
int engine_add(engine_t *e, const int32_t *prompt, int n, const engine_gen_t *gen, int parent);
// one forward + sampling; writes up to cap events (cap >= max_seqs), returns their count, 0 when
// nothing is left to run, -1 on error. A finished sequence gives its KV pages back at once; its
// tokens stay readable until engine_release() or until engine_add() needs its slot (the oldest
// finished slot is reused when no slot is free), so a handle is stale after a later engine_add.
int engine_step(engine_t *e, engine_event_t *events, int cap);
// drops a sequence now (finished, kept or running); its handle may be reused
void engine_release(engine_t *e, int seq);
// sequences that still want forwards (waiting or running)
int engine_pending(const engine_t *e);
// prompt + generated tokens of a sequence and the log-probs of the generated ones
const int32_t *engine_tokens(const engine_t *e, int seq, int *n, int *n_prompt);
const float *engine_logprobs(const engine_t *e, int seq, int *n);
const kvcache_t *engine_kvcache(const engine_t *e);
// logits (V) of the last sampling of a sequence, valid until the next step (tests, debugging).
// Under an output restriction the row is widened (-inf off the list) into one engine buffer: valid
// until the next engine_last_logits call too.
const float *engine_last_logits(const engine_t *e, int seq);
