// kernels: the compute ops of trustee behind one backend-neutral interface.
//
// A tensor carries its dtype and its device. Every op checks shapes/dtypes, then dispatches on the
// device of its output to a backend: kernels/cpu (C + OpenBLAS, the reference) or kernels/cuda
// (CUDA C + cuBLAS, compiled when nvcc is present). model/ calls only this header, so a backend
// plugs in without model/ changing. Ops return 0, or -1 with err_set() (kernels/err.h).
//
// Shape legend used in comments across the project:
//   N  token rows in a batch (all sequences' new tokens, packed)
//   C  hidden size          I  MLP intermediate size      V  vocabulary size
//   Hq query heads          Hkv key/value heads           D  head dim
//   B  sequences in a batch P  KV pages in the pool       S  tokens per KV page
//   MP max pages of one sequence in a page table
// Matrices are row-major; weights are stored [out, in] as in HF / torch.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum { DTYPE_F32 = 0, DTYPE_BF16 = 1, DTYPE_F16 = 2, DTYPE_I32 = 3 } dtype_t;
typedef enum { DEVICE_CPU = 0, DEVICE_CUDA = 1 } device_t;

#define TENSOR_MAX_DIMS 4
typedef struct {
    void *data;
    dtype_t dtype;
    device_t device;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int owned; // 1 when tensor_alloc() allocated data (tensor_free releases it)
} tensor_t;

size_t dtype_size(dtype_t dt);
const char *dtype_name(dtype_t dt);
int64_t tensor_numel(const tensor_t *t);
size_t tensor_nbytes(const tensor_t *t);
// a non-owning view of existing memory
tensor_t tensor_view(void *data, dtype_t dt, device_t dev, int ndim, const int64_t *shape);
// allocates zeroed memory on the device
int tensor_alloc(tensor_t *t, dtype_t dt, device_t dev, int ndim, const int64_t *shape);
void tensor_free(tensor_t *t);
// copies between devices and converts dtype (F32 <-> BF16/F16); shapes must have equal numel
int tensor_copy(tensor_t *dst, const tensor_t *src);

// ---- scalar conversions (host and device) ----
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f); // round to nearest even
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// ---- backends ----
int kernels_backend_available(device_t dev); // 1 when usable now (CUDA: a device is present)
void kernels_set_threads(int n);             // CPU backend threads (ours; OpenBLAS calls run one
                                             // thread each on fixed tiles); n<=0: all cores
int kernels_get_threads(void);

// ---- ops (forward) ----
// out (N, O) = x (N, I) @ w (O, I)^T ; accumulate=1 adds into out
int op_matmul(tensor_t *out, const tensor_t *x, const tensor_t *w, int accumulate);
// out (N, C) = x (N, C) * rsqrt(mean(x^2) + eps) * w (C). Also QK-norm: view q as (N*Hq, D).
int op_rmsnorm(tensor_t *out, const tensor_t *x, const tensor_t *w, float eps);
// x (N, H, D) rotated in place (HF rotate-half: pairs (i, i + D/2)); row n at position pos[n];
// inv_freq_i = theta^(-2i/D). pos: I32 (N) on the same device.
int op_rope(tensor_t *x, const tensor_t *pos, double theta);
// out = a + b, same shape (out may alias a or b)
int op_add(tensor_t *out, const tensor_t *a, const tensor_t *b);
// out (N, I) = silu(gate (N, I)) * up (N, I)
int op_swiglu(tensor_t *out, const tensor_t *gate, const tensor_t *up);
// out (N, C) = table (V, C)[ids[n]]; ids: I32 (N); an id outside [0, V) is an error
int op_embedding(tensor_t *out, const tensor_t *table, const tensor_t *ids);
// x (N, V): softmax of each row, in place
int op_softmax(tensor_t *x);
// out (N) F32 = log_softmax(logits (N, V) / temperature)[ids[n]]; ids: I32 (N)
int op_logsoftmax_gather(tensor_t *out, const tensor_t *logits, const tensor_t *ids, float temperature);
// writes k, v (N, Hkv, D) into the paged pools k_pool, v_pool (P, S, Hkv, D) at slots[n]
// (slot = page * S + offset); slots: I32 (N)
int op_kv_store(tensor_t *k_pool, tensor_t *v_pool, const tensor_t *k, const tensor_t *v,
                const tensor_t *slots);
// Causal GQA attention of B sequences over the paged KV cache.
//   out, q      (N, Hq, D)    rows of sequence b are q_start..q_start+q_len-1
//   k/v_pool    (P, S, Hkv, D)
//   seq_info    I32 (B, 3)    per sequence: q_start, q_len, kv_len; query i of the sequence sits at
//                             position kv_len - q_len + i and sees positions 0..that position
//   page_table  I32 (B, MP)   page ids of each sequence, in order
// Query head h uses KV head h / (Hq / Hkv). Scores are scaled by 1/sqrt(D).
int op_attention(tensor_t *out, const tensor_t *q, const tensor_t *k_pool, const tensor_t *v_pool,
                 const tensor_t *seq_info, const tensor_t *page_table);

// ---- ops (backward) ----
// Gradients of the forward ops above, for training (kernels/cpu/*_backward.c). Parameter
// gradients (dw) always ACCUMULATE (+=), so micro-batches add up; input gradients (dx) are written
// (=), or added when accumulate = 1. A NULL gradient pointer skips that output. All tensors on one
// device: the CPU backend takes F32 only, CUDA (kernels/cuda/backward.cu) F32 / BF16 / F16.
// matmul: dx (N, I) (+)= dout (N, O) @ w (O, I); dw (O, I) += dout^T @ x (N, I)
int op_matmul_backward(tensor_t *dx, tensor_t *dw, const tensor_t *dout, const tensor_t *x,
                       const tensor_t *w, int accumulate);
// rmsnorm over the last dim C (rows = all leading dims; also QK-norm over D per head):
// dx (R, C) (+)= d/dx, dw (C) += sum over rows. x is the forward input; dx may alias dout.
int op_rmsnorm_backward(tensor_t *dx, tensor_t *dw, const tensor_t *dout, const tensor_t *x,
                        const tensor_t *w, float eps, int accumulate);
// rope: dx (N, H, D) rotated back in place (the inverse rotation = the transpose)
int op_rope_backward(tensor_t *dx, const tensor_t *pos, double theta);
// swiglu: dgate, dup (N, I) (=) from dout (N, I), gate, up (dgate / dup may alias dout)
int op_swiglu_backward(tensor_t *dgate, tensor_t *dup, const tensor_t *dout, const tensor_t *gate,
                       const tensor_t *up);
// embedding (also a row scatter-add): dtable (V, C) += rows of dout (N, C) at ids (N)
int op_embedding_backward(tensor_t *dtable, const tensor_t *dout, const tensor_t *ids);
// log-softmax gather: dlogits (N, V) = dlp[n] * (onehot(ids[n]) - softmax(logits / t)) / t;
// dlogits may alias logits (computed in place)
int op_logsoftmax_gather_backward(tensor_t *dlogits, const tensor_t *logits, const tensor_t *ids,
                                  const tensor_t *dlp, float temperature);
// entropy (N) F32 of softmax(logits (N, V) / temperature), per row (a training metric)
int op_softmax_entropy(tensor_t *out, const tensor_t *logits, float temperature);
// Causal GQA attention on the plain training layout, every row of length T (right padding is
// harmless: no real token sees a pad). q, dq, dout (B, T, Hq, D); k, v, dk, dv (B, T, Hkv, D);
// k, q after RoPE. dq, dk, dv are written (=); dK/dV sum over the query heads sharing a KV head.
int op_attention_backward(tensor_t *dq, tensor_t *dk, tensor_t *dv, const tensor_t *dout,
                          const tensor_t *q, const tensor_t *k, const tensor_t *v);
