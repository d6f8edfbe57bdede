// qwen3_internal: the one per-layer forward body shared by the inference forward (qwen3.c, paged
// KV cache) and the training forward (qwen3_train.c, which also saves activations for backward).
// Not part of the public model API.
#pragma once
#include "../kernels/kernels.h"
#include "qwen3.h"

// buffers one layer runs on (N rows of a packed batch)
typedef struct {
    tensor_t x;          // (N, C) residual stream, updated in place
    tensor_t xb;         // (N, C) normed input of a block (scratch)
    tensor_t q;          // (N, Hq, D)
    tensor_t k, v;       // (N, Hkv, D)
    tensor_t att;        // (N, Hq, D) attention output
    tensor_t hb, hb2;    // (N, I) MLP gate (then swiglu output) / up
    tensor_t pos;        // I32 (N) positions
    // attention context: pools (P, S, Hkv, D), slots I32 (N), seq_info I32 (B, 3), page table
    // I32 (B, MP). When k_pool's memory IS k's (training: the layer's K/V rows seen as B pages of
    // T slots), the K/V store is skipped.
    tensor_t *k_pool, *v_pool;
    tensor_t slots, seq_info, page_table;
} qwen3_layer_io_t;

// activations of one layer kept for the backward (N rows each). A field with data == NULL is not
// saved; a field whose memory is the io buffer itself is not copied.
typedef struct {
    tensor_t x_in;   // (N, C) layer input
    tensor_t xn1;    // (N, C) input_norm(x_in)
    tensor_t q_raw;  // (N, Hq, D) q projection before QK-norm
    tensor_t k_raw;  // (N, Hkv, D)
    tensor_t q, k;   // (N, Hq, D), (N, Hkv, D) after QK-norm and RoPE
    tensor_t v;      // (N, Hkv, D)
    tensor_t att;    // (N, Hq, D) attention output (o_proj input)
    tensor_t x_mid;  // (N, C) residual after the attention block
    tensor_t xn2;    // (N, C) post_norm(x_mid)
    tensor_t gate;   // (N, I) gate projection (before swiglu)
    tensor_t up;     // (N, I) up projection
} qwen3_layer_save_t;

// x += attention block; x += MLP block, for layer l. save may be NULL (inference).
int qwen3_layer_forward(const qwen3_t *m, int l, qwen3_layer_io_t *io, const qwen3_layer_save_t *save);
