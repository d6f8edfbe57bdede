// sampler: next-token sampling from one row of logits (temperature, top-k, top-p, greedy).
//
// Randomness is counter-based: the uniform number behind a draw is a pure function of
// (seed, stream, step), where `stream` names the sequence (e.g. a request id) and `step` counts its
// generated tokens. A sequence therefore gets the same samples whatever else shares its batch and
// whatever the thread count.
//
// The log-prob returned with each token is log softmax(logits / temperature)[token] over the FULL
// vocabulary, before top-k / top-p truncation (the distribution a policy-gradient method
// differentiates). At temperature 0 (greedy) it is log softmax(logits)[token] (temperature 1).
// sampler_sample_ids / sampler_sample_compact: the same over the listed ids only.
#pragma once
#include <stdint.h>

typedef struct {
    float temperature; // 0: greedy (argmax, lowest id on ties)
    int top_k;         // keep the k most likely tokens; 0: off
    float top_p;       // keep the smallest most-likely set with mass >= top_p (after top-k); 1: off
    uint64_t seed;
} sampler_params_t;

// uniform double in [0, 1) for (seed, stream, step)
double sampler_uniform(uint64_t seed, uint64_t stream, uint64_t step);

// scratch for one row of V logits (one per thread that samples)
typedef struct {
    int vocab_size;
    float *prob;  // (V) unnormalized e^((l - max) / T)
    int32_t *idx; // (V) candidate ids
} sampler_t;

int sampler_init(sampler_t *s, int vocab_size);
void sampler_free(sampler_t *s);
// checks temperature >= 0, top_k >= 0, 0 < top_p <= 1 (err_set naming the bad value)
int sampler_params_check(const sampler_params_t *p);
// draws a token from logits (V); writes it and its log-prob (see above)
int sampler_sample(sampler_t *s, const sampler_params_t *p, const float *logits, uint64_t stream,
                   uint64_t step, int32_t *token, float *logprob);
// the same draw when only logits[ids[0..n)] are finite (ids ascending; e.g. the ids a grammar
// allows): touches only those entries, so its cost is O(n), not O(V). The log-prob is over them.
int sampler_sample_ids(sampler_t *s, const sampler_params_t *p, const float *logits, const int32_t *ids,
                       int n, uint64_t stream, uint64_t step, int32_t *token, float *logprob);
// the same draw from a compact row: logits (n) holds the logits of ids[0..n) (ascending; every
// other id is -inf), e.g. a model's restricted output (qwen3_set_output_vocab). O(n); the token
// written is an id from `ids`, the log-prob is over them. n <= vocab_size.
int sampler_sample_compact(sampler_t *s, const sampler_params_t *p, const float *logits, const int32_t *ids,
                           int n, uint64_t stream, uint64_t step, int32_t *token, float *logprob);
