// memplan: device memory planned in one place. Given a Qwen3 config and a role (policy learner,
// rollout actor, frozen simulator) with its settings, memplan_compute() fills one table of named
// buffers (weights, master copy, Adam moments, gradients, activations, attention workspace,
// logits chunk, KV cache, cuBLAS workspace, CUDA context reserve) with their bytes, the total
// against a device capacity, and the largest KV cache that fits; memplan_print() prints it.
// `trustee plan-memory` (cmd/plan_memory.c) is the command line; docs/gpu-memory.md the plan.
//
// The buffer shapes are the ones the code allocates (element sizes are settings, because the
// GPU plan runs bf16 where today's CPU code runs F32):
//   learner activations: qwen3_train_init (model/qwen3_train.c). Without checkpointing every
//     layer keeps 12 tensors (qwen3_layer_save_t): x_in, xn1, x_mid, xn2 (N, C); q_raw, q, att
//     (N, Hq, D); k_raw, k, v (N, Hkv, D); gate, up (N, I). With checkpointing each layer keeps
//     only x_in, plus one scratch save (the other 11) for the layer being recomputed. Shared
//     buffers: x, xb (N, C), hb (N, I); loss rows xl, xn, dxn (R, C); backward dx, dxb (N, C),
//     dq, datt (N, Hq, D), dk, dv (N, Hkv, D), dgate, dup (N, I); one logits chunk (rows, W).
//   rollout / simulator: qwen3_state_init (model/qwen3.c) for one forward of N rows (decode rows
//     + prefill chunk) with R = max_seqs logit rows, and the paged KV cache of model/kvcache.c:
//     per layer a K and a V pool (P, S, Hkv, D) => 2 x L x Hkv x D x (P*S) x bytes.
// Sizes are bytes (int64_t); GiB = 2^30 bytes, GB = 10^9 bytes.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "config.h"

typedef enum { MEMPLAN_LEARNER = 0, MEMPLAN_ROLLOUT = 1, MEMPLAN_SIM = 2 } memplan_role_t;

typedef struct {
    memplan_role_t role;
    double gpu_gib;          // device capacity (GiB)
    // element sizes in bytes
    int weight_bytes;        // 2: bf16 weights (every role)
    int master_bytes;        // learner: 4 = fp32 master copy; 0 = none (update the weights directly)
    int adam_bytes;          // learner: bytes of each Adam moment (4)
    int grad_bytes;          // learner: 4 (fp32) or 2 (bf16)
    int act_bytes;           // activations and their gradients: 2 (bf16) or 4 (F32, today's CPU code)
    int kv_bytes;            // KV cache element: 2 (bf16) or 4 (F32, today's code)
    int seq_len;             // tokens per sequence (learner rows, rollout episode length)
    // learner
    int64_t micro_tokens;    // N = B x T rows of one forward/backward
    int checkpointing;       // 1: keep only layer inputs, recompute in backward
    int out_vocab;           // 0: full vocabulary V; n > 0: restricted output vocabulary (W = n)
    int chunk_rows;          // LM-head rows per chunk (qwen3_train: 32)
    int learners;            // data-parallel learners that share sharded state (>= 1)
    int zero_stage;          // 0: full state on every learner; 1: master + Adam sharded; 2: + grads
    // rollout actor / simulator
    int64_t kv_tokens;       // KV token slots P x S; 0: the largest that fits
    int page_size;           // S
    int max_seqs;            // concurrent sequences (= logit rows of a decode step)
    int64_t batch_tokens;    // rows of one forward: decode rows + prefill chunk tokens
    // fixed reserves (bytes)
    int64_t cublas_workspace;
    int64_t context_reserve;
} memplan_opts_t;

#define MEMPLAN_MAX_ENTRIES 32

typedef struct {
    char name[40];
    char formula[112];       // the shape, in the config's letters (legend in memplan_print)
    int64_t bytes;
    int counted;             // 0: shown for reference only (a buffer the plan does NOT allocate)
} memplan_entry_t;

typedef struct {
    memplan_opts_t opts;
    qwen3_config_t cfg;
    int64_t n_params;        // parameter count from the config
    memplan_entry_t e[MEMPLAN_MAX_ENTRIES];
    int n;
    int64_t total;           // sum of the counted entries
    int64_t capacity;        // gpu_gib in bytes
    int fits;                // total <= capacity (rollout/sim with kv_tokens = 0: one sequence fits)
    // rollout / simulator
    int64_t kv_bytes_per_token;  // 2 x L x Hkv x D x kv_bytes
    int64_t kv_max_tokens;       // largest KV cache beside everything else (whole pages), or 0
    // learner: the largest micro_tokens that fits with the other settings unchanged (0: none)
    int64_t max_micro_tokens;
} memplan_t;

// defaults of a role (bf16 weights/activations/KV, fp32 master + Adam + grads, 1 learner, ZeRO 0,
// checkpointing on, 8192-token sequences, 16-token pages, 64 sequences, 80 GiB)
void memplan_opts_default(memplan_opts_t *o, memplan_role_t role);
// "learner" / "rollout" / "sim" -> role; -1 (err_set) otherwise
int memplan_role_parse(const char *s, memplan_role_t *role);
const char *memplan_role_name(memplan_role_t role);
// built-in shapes: "qwen3-8b", "qwen3-0.6b" (HF config.json values) and "laptop" (train's preset)
int memplan_preset(qwen3_config_t *c, const char *name);

// parameters of a Qwen3 model (embedding, lm_head when untied, per layer 2 norms + q/k/v/o + QK
// norms + gate/up/down, final norm)
int64_t memplan_param_count(const qwen3_config_t *c);
// parameters of one decoder layer
int64_t memplan_layer_params(const qwen3_config_t *c);

// fills the budget. Returns 0 (fits or not: see p->fits), or -1 (err_set) on invalid settings.
int memplan_compute(memplan_t *p, const qwen3_config_t *c, const memplan_opts_t *o);
// bytes of a named entry, or -1 when absent
int64_t memplan_bytes(const memplan_t *p, const char *name);
// prints the table (name, shape formula, GiB, GB), the total against the capacity and the KV line
void memplan_print(const memplan_t *p, FILE *f);
// one line: "needs 93.1 GiB of 80 GiB: largest adam m 30.5 GiB, ..." (into buf)
void memplan_shortfall(const memplan_t *p, char *buf, size_t cap);
