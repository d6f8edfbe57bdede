// qwen3: the Qwen3 decoder (weights + forward over a paged KV cache), on top of kernels/.
//
// Weights come from a Hugging Face checkpoint directory (config.json + model.safetensors or
// shards); BF16 / F16 / F32 tensors are converted to F32 on the CPU when they load. With tied
// embeddings (no lm_head.weight) the logits use embed_tokens.
//
// Output vocabulary: qwen3_set_output_vocab() may restrict what the model predicts to a list of
// ids (e.g. the tokens a set of environments uses plus the special tokens). The logits of every
// other id are then -inf: every distribution is the softmax over the listed ids, for the engine
// (sampling and sampling-time log-probs) and for the learner (qwen3_train.h). The LM head runs
// over a gathered copy W_sub of the listed lm_head rows, so its cost scales with the list, not V.
//
// The forward takes a packed batch of "chunks": each chunk appends n new tokens to one KV cache
// sequence (a whole prompt, a piece of one, or the one token of a decode step). All chunks run as
// one batch of N = sum n rows; logits are computed only for the rows that ask for them.
// Shapes follow the legend of kernels/kernels.h.
#pragma once
#include <stdint.h>

#include "../kernels/kernels.h"
#include "config.h"
#include "kvcache.h"

typedef struct {
    tensor_t input_norm; // (C)
    tensor_t wq;         // (Hq*D, C)
    tensor_t wk;         // (Hkv*D, C)
    tensor_t wv;         // (Hkv*D, C)
    tensor_t wo;         // (C, Hq*D)
    tensor_t q_norm;     // (D)
    tensor_t k_norm;     // (D)
    tensor_t post_norm;  // (C)
    tensor_t w_gate;     // (I, C)
    tensor_t w_up;       // (I, C)
    tensor_t w_down;     // (C, I)
} qwen3_layer_t;

typedef struct {
    qwen3_config_t cfg;
    device_t device;
    tensor_t embed;        // (V, C)
    tensor_t final_norm;   // (C)
    tensor_t lm_head;      // (V, C); a view of embed when tied
    qwen3_layer_t *layers; // (L)
    // output vocabulary (qwen3_set_output_vocab); out_n == 0: the full vocabulary
    int out_n;             // n: listed ids
    int32_t *out_ids;      // (n) host: the listed ids, ascending
    int32_t *out_pos;      // (V) host: the position of each id in out_ids, -1 when not listed
    tensor_t out_ids_t;    // I32 (n) out_ids on the model's device (the gather index of W_sub)
    tensor_t lm_head_sub;  // (n, C) W_sub: lm_head rows out_ids (a copy: see the refresh below)
} qwen3_t;

// loads config.json and the weights of a checkpoint directory onto `device` (as F32)
int qwen3_load(qwen3_t *m, const char *dir, device_t device);
// A model shaped by cfg with random weights, created directly on `device` with every weight stored
// as `dtype` (F32; BF16 / F16 for the CUDA backend, which computes in F32 on any storage dtype:
// the CPU backend computes on F32 weights only). No checkpoint: for benchmarks and tests.
// Matrices and the embedding are uniform with standard deviation 0.02 (HF's initializer_range),
// the norm weights 1. Element i of the k-th tensor (in qwen3_free's order) depends on (seed, k, i)
// only, so the same seed gives the same weights on every device, rounded to `dtype`.
int qwen3_init_random(qwen3_t *m, const qwen3_config_t *cfg, device_t device, dtype_t dtype,
                      uint64_t seed);
void qwen3_free(qwen3_t *m);
// Restricts the model's OUTPUT to n ids (sorted ascending, unique, each in [0, V)): the logits of
// every other id are -inf, i.e. the distribution is the softmax over the listed ids only, for the
// engine (sampling + sampling-time log-probs) and for the learner (qwen3_train_forward log-probs,
// entropies and the backward). The input embedding is unchanged (any id may appear in prompts).
// Implemented by a gathered copy W_sub (n, C) of the lm_head rows: the LM head GEMM runs over n
// rows instead of V. After the weights change (optimizer step, weights loaded), call
// qwen3_output_vocab_refresh. n = 0 / ids = NULL removes the restriction.
int qwen3_set_output_vocab(qwen3_t *m, const int32_t *ids, int n);
int qwen3_output_vocab_refresh(qwen3_t *m);

// a KV cache shaped for this model: n_pages pages of page_size tokens, max_seqs sequences of at
// most max_seq_len tokens
int qwen3_kvcache_init(const qwen3_t *m, kvcache_t *kv, int n_pages, int page_size, int max_seqs,
                       int max_seq_len);

// Activations, sized once for the largest batch and reused by every forward.
typedef struct {
    int max_tokens;     // N_max: rows per forward
    int max_seqs;       // B_max: chunks per forward
    int max_logits;     // R_max: logit rows per forward
    int max_pages;      // MP of the KV cache this state serves
    tensor_t x, xb;     // (N, C) residual stream, normed input of a block
    tensor_t q;         // (N, Hq, D)
    tensor_t k, v;      // (N, Hkv, D)
    tensor_t att;       // (N, Hq, D) attention output
    tensor_t hb, hb2;   // (N, I) MLP gate / up
    tensor_t xl;        // (R, C) rows that get logits
    tensor_t logits;    // (R, V)
    tensor_t ids, pos, slots; // I32 (N)
    tensor_t rows;            // I32 (R) row index of each logits row
    tensor_t seq_info;        // I32 (B, 3)
    tensor_t page_table;      // I32 (B, MP)
    // host copies of the index tensors (the same memory when the model is on the CPU)
    int32_t *h_ids, *h_pos, *h_slots, *h_rows, *h_seq_info, *h_page_table;
    float *h_logits;          // (R, W) logits on the host after qwen3_forward
    int logits_cols;          // W: V, or n under an output restriction (set by qwen3_forward)
    int h_owned;              // 1 when the h_* arrays were allocated apart from the tensors
} qwen3_state_t;

int qwen3_state_init(qwen3_state_t *s, const qwen3_t *m, const kvcache_t *kv, int max_tokens,
                     int max_seqs, int max_logits);
void qwen3_state_free(qwen3_state_t *s);

typedef struct {
    int seq;             // KV cache sequence the tokens are appended to
    const int32_t *ids;  // (n) new tokens, at positions len .. len+n-1 of the sequence
    int n;
    int n_logits;        // logits for the last n_logits of these tokens (0 .. n)
} qwen3_chunk_t;

// Runs the chunks as one packed batch: stores their K/V in the cache (the sequences grow by n) and
// leaves the logits of the requested rows in s->h_logits (R, V), chunk by chunk in order. Under an
// output restriction the rows are compact: s->h_logits is (R, n) (s->logits_cols = n) and entry j
// of a row is the logit of id m->out_ids[j] (every other id's logit is -inf: nothing stores them).
// Returns R, or -1 (an id outside the vocabulary, a full cache, a batch larger than the state:
// the cache is left as it was).
int qwen3_forward(const qwen3_t *m, qwen3_state_t *s, kvcache_t *kv, const qwen3_chunk_t *chunks,
                  int n_chunks);
