// qwen3_train: the training forward and backward of Qwen3 (the learner's side of the model).
//
// The forward runs the SAME per-layer code as qwen3_forward (model/qwen3_internal.h:
// qwen3_layer_forward), so rollout and learner share one forward. Here the batch is B sequences
// right-padded to T tokens (positions 0..T-1 in every row); the attention reads the K/V rows of
// this batch directly (the layer's own K/V buffers seen as a pool of B pages of T slots), so no KV
// cache is involved.
//
// Log-probs are taken only at loss positions, and the LM head runs in chunks of positions:
// there is never a (tokens x vocabulary) buffer. Token-aligned mask (tests/data/qwen3-tiny/README.md):
// mask[b][t] = 1 iff token ids[b][t] is a target, predicted by the logits at t-1 (so mask[b][0] = 0):
//   lp[b][t] = log_softmax(logits[b][t-1] / temperature)[ids[b][t]]
//
// Under an output restriction (qwen3_set_output_vocab) the LM head is W_sub (n, C): the logits
// chunk is (chunk_rows, n), log-softmax and entropy run over the listed ids, a target must be a
// listed id (an error names the id and its position), and the backward scatter-adds d W_sub into
// the gradient of lm_head (tied: of the embedding) at the listed rows. Refresh W_sub after every
// weight update (qwen3_output_vocab_refresh) and keep the restriction between a forward and its
// backward.
//
// Activation memory is planned in one place (qwen3_train_init), sized from (B_max, T_max) and the
// config, and reused by every step. With checkpoint = 1 only each layer's input is kept; the
// backward recomputes the layer's forward (the same code) before differentiating it. Both modes
// give identical gradients.
//
// Gradients live in a qwen3_t of the same shapes as the weights (qwen3_grads_init): tied models
// get one embedding gradient (lookup part + output part), untied ones a separate lm_head gradient.
//
// Devices: everything runs on the model's device (m->device) through the same code; only the
// backend of the ops differs. On CUDA the plan's buffers and the gradients live on the device; the
// batch's index arrays are built on the host (h_* below) and uploaded once per forward, dL/dlp once
// per backward, and the per-position log-probs / entropies come back to the host arrays the API
// returns. On the CPU the h_* arrays ARE the tensors' memory (no copies). Weights: F32 on either
// device; CUDA also takes BF16 / F16 weights (its ops compute in F32 on any storage dtype), the
// gradients are F32 always.
#pragma once
#include <stdint.h>

#include "../kernels/kernels.h"
#include "qwen3.h"
#include "qwen3_internal.h"

// ---- gradient containers and the parameter list ----

// g: zeroed tensors shaped like m's weights, on m's device (tied: g->lm_head views g->embed).
// Free with qwen3_free(g).
int qwen3_grads_init(qwen3_t *g, const qwen3_t *m);
int qwen3_grads_zero(qwen3_t *g); // sets every gradient to 0

// one parameter: its Hugging Face name and tensor
typedef struct {
    char name[96];
    tensor_t *t;
} qwen3_param_t;

// every parameter of m (weights or gradients), in a fixed order, under its HF name; a tied model
// lists model.embed_tokens.weight once and no lm_head.weight. Returns the count (<= cap), or -1.
int qwen3_params(qwen3_t *m, qwen3_param_t *out, int cap);
int qwen3_n_params(const qwen3_t *m); // the count qwen3_params returns
// writes every parameter as F32 safetensors under its HF name (copied to the host when needed)
int qwen3_params_write(qwen3_t *m, const char *path);

// ---- the training batch ----

typedef struct {
    int B, T;
    const int32_t *ids;     // (B, T) right-padded; every id must be in [0, V)
    const int32_t *lengths; // (B) real tokens per row (NULL: all T); mask must be 0 at t >= len
    const uint8_t *mask;    // (B, T) token-aligned 0/1 loss mask (mask[b][0] must be 0)
} qwen3_batch_t;

// ---- activations ----

typedef struct {
    int max_batch, max_len; // B_max, T_max
    int checkpoint;         // 1: keep only layer inputs, recompute each layer in backward
    int chunk_rows;         // LM-head rows per chunk (logits chunk (chunk_rows, V))
    int n_layers;
    // per layer: the saved activations (all fields when checkpoint = 0; only x_in otherwise)
    qwen3_layer_save_t *saves; // (L)
    qwen3_layer_save_t scratch; // checkpoint = 1: the one layer being recomputed
    // shared buffers (N = B_max * T_max rows, R = loss rows of the batch, at most N)
    tensor_t x;           // (N, C) residual stream (after the last layer: final hidden)
    tensor_t xb;          // (N, C) scratch
    tensor_t hb;          // (N, I) scratch (swiglu output)
    tensor_t pos;         // I32 (N)
    tensor_t ids;         // I32 (N)
    tensor_t seq_info;    // I32 (B, 3)
    tensor_t page_table;  // I32 (B, 1)
    tensor_t rows;        // I32 (R) row n = b*T + t-1 of each loss position (b, t)
    tensor_t targets;     // I32 (R) the target of each loss position: the id ids[b][t], or its
                          // position in the output list under a restriction (a column of the logits)
    tensor_t xl;          // (R, C) gathered final hidden rows
    tensor_t xn;          // (R, C) final-normed rows
    tensor_t logits;      // (chunk_rows, V) one chunk of logits
    tensor_t lp_rows;     // (R) log-probs of the loss positions (F32)
    tensor_t ent_rows;    // (R) entropies of the loss positions (F32)
    tensor_t dlp_rows;    // (R) dL/dlp of the loss positions
    // backward buffers
    tensor_t dx;          // (N, C) gradient of the residual stream
    tensor_t dxb;         // (N, C)
    tensor_t dq, dk, dv;  // (N, Hq, D), (N, Hkv, D), (N, Hkv, D)
    tensor_t datt;        // (N, Hq, D)
    tensor_t dgate, dup;  // (N, I)
    tensor_t dxn;         // (R, C)
    tensor_t dw_sub;      // (n, C) d W_sub under an output restriction (allocated when first needed)
    // the last forward's batch
    int B, T, R;
    int out_n;            // the output restriction it ran under (n, 0: none)
    float temperature;
    int *h_rows_bt;       // (R) host: b*T + t of each loss position
    // host side of the index and per-row tensors above (CPU: the tensors' own memory; CUDA: staging
    // arrays, uploaded / downloaded once per step)
    int32_t *h_ids, *h_pos, *h_seq_info, *h_page_table, *h_rows, *h_targets;
    float *h_lp_rows, *h_ent_rows, *h_dlp_rows;
    int h_owned;          // 1 when the h_* arrays above were allocated apart from the tensors
} qwen3_train_t;

// plans and allocates every buffer once for batches up to max_batch x max_len
int qwen3_train_init(qwen3_train_t *tr, const qwen3_t *m, int max_batch, int max_len, int checkpoint);
void qwen3_train_free(qwen3_train_t *tr);

// Forward over a batch: writes lp (B, T) (0 off the mask) and, when entropy != NULL, the entropy
// of each masked position's distribution (logits[b][t-1] / temperature) (0 off the mask).
// Keeps what the backward needs. Returns the number of loss positions R (0 allowed), or -1.
int qwen3_train_forward(const qwen3_t *m, qwen3_train_t *tr, const qwen3_batch_t *batch,
                        float temperature, float *lp, float *entropy);

// Backward of the last forward: dlp (B, T) = dL/dlp (ignored off the mask). ADDS the gradient of
// every parameter into grads (from qwen3_grads_init; zero it between steps yourself).
int qwen3_train_backward(const qwen3_t *m, qwen3_train_t *tr, const float *dlp, qwen3_t *grads);
