// lmhead: the log-prob of target tokens through the LM head, without the (N, V) logits.
//
//   lp  (N) F32 = log_softmax(h (N, C) @ w (V, C)^T / temperature)[ids[n]]
//   ent (N) F32 = entropy of softmax(h @ w^T / temperature) per row (optional)
//
// The rows go through in chunks of R rows, R = workspace_bytes / (V * 4) clamped to [1, N], so the
// only logits ever held are one (R, V) F32 chunk: per chunk one GEMM (CPU: op_matmul, CUDA:
// cuBLAS) and a row reduction (CPU: op_logsoftmax_gather / op_softmax_entropy; CUDA: one block per
// row, two passes over the chunk, sums in double). Dispatches on the device of lp; every tensor
// on that device. CPU: F32 tensors (the CPU ops' dtypes); CUDA: h and w F32, BF16 or F16 (as
// cuda_op_matmul: h is converted to w's dtype when they differ).
//
// Backward (CPU, and CUDA for F32 tensors): from dlp (N) F32,
//   dlogits = dlp * (onehot(ids) - softmax(logits / t)) / t       (per chunk, R x V)
//   dh (N, C) (+)= dlogits @ w   (written, or added when accumulate)
//   dw (V, C)  += dlogits^T @ h (always accumulates, as op_matmul_backward)
// recomputing each chunk's logits. NULL dh or dw skips it.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" { // kernels.h has no C++ guard of its own
#endif
#include "kernels/kernels.h"

// the chunk height for a workspace cap: workspace_bytes / (V * 4) in [1, N]
int64_t lmhead_chunk_rows(int64_t N, int64_t V, size_t workspace_bytes);

int lmhead_logprob(tensor_t *lp, tensor_t *ent, const tensor_t *h, const tensor_t *w,
                   const tensor_t *ids, float temperature, size_t workspace_bytes);
int lmhead_logprob_backward(tensor_t *dh, tensor_t *dw, const tensor_t *dlp, const tensor_t *h,
                            const tensor_t *w, const tensor_t *ids, float temperature,
                            size_t workspace_bytes, int accumulate);

#ifdef TRUSTEE_CUDA
// the CUDA halves (kernels/cuda/lmhead.cu), shapes already checked by the functions above
int cuda_lmhead_logprob(tensor_t *lp, tensor_t *ent, const tensor_t *h, const tensor_t *w,
                        const tensor_t *ids, float temperature, int64_t R);
int cuda_lmhead_logprob_backward(tensor_t *dh, tensor_t *dw, const tensor_t *dlp,
                                 const tensor_t *h, const tensor_t *w, const tensor_t *ids,
                                 float temperature, int64_t R, int accumulate);
#endif

#ifdef __cplusplus
}
#endif
