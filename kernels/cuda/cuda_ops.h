// cuda_ops: the CUDA backend of kernels/ (CUDA C + cuBLAS), plain C interface.
//
// kernels/kernels.c dispatches an op whose output lives on DEVICE_CUDA to the cuda_op_* function
// of the same name. Shapes and dtypes are already checked there; these functions only check what
// only the device can know (e.g. an embedding id out of range). Every function returns 0, or -1
// with err_set() (kernels/err.h). The definitions are compiled only when TRUSTEE_CUDA is defined
// (nvcc present): callers guard their calls with #ifdef TRUSTEE_CUDA.
//
// Storage dtypes: float tensors may be F32, BF16 or F16, each tensor independently (loads convert
// to F32, stores round to nearest even); index tensors are I32. Arithmetic accumulates in F32.
// matmul: when x and w differ in dtype, x is converted to w's dtype first (so F32 x with BF16 w
// rounds x to BF16), then cuBLAS runs with F32 accumulation (no TF32).
// Streams: everything runs on the default stream and an op returns once its work is queued,
// except the ops that validate device-side indices (embedding ids, logsoftmax_gather ids, kv_store
// slots, attention seq_info / page_table): they read a device error record back, so they
// synchronize and report a bad index as an error of that op.
// Threads: one host thread at a time uses the backend (the cuBLAS handle, the scratch buffer and
// the error record are per process); everything runs on the current device (device 0 unless the
// caller sets another with cudaSetDevice).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { // kernels.h has no C++ guard of its own; the .cu files include it through here
#endif
#include "kernels/kernels.h"

// 1 when the CUDA runtime reports at least one usable device; any error (no driver, driver too
// old, no device) -> 0. The result is cached after the first call.
int cuda_available(void);
// the reason cuda_available() returned 0 (e.g. "cudaGetDeviceCount: CUDA driver version is
// insufficient for CUDA runtime version (35)"), or "" when it returned 1
const char *cuda_unavailable_reason(void);

// device memory
int cuda_alloc(void **p, size_t n); // n bytes, not zeroed; n == 0 gives *p = NULL
void cuda_free(void *p);            // NULL is fine
// copies n bytes between any two devices (CPU <-> CUDA, CUDA <-> CUDA, CPU <-> CPU); synchronous
int cuda_memcpy(void *dst, device_t dd, const void *src, device_t sd, size_t n);
int cuda_set_zero(void *p, size_t n); // n bytes on the device
// waits for all queued device work; reports a pending asynchronous error
int cuda_sync(void);

// dtype conversion of n elements, both buffers on the device: F32 <-> BF16 / F16, and a plain
// copy when ddt == sdt
int cuda_convert(void *dst, dtype_t ddt, const void *src, dtype_t sdt, int64_t n);

// ops: exactly the signatures of the op_* in kernels/kernels.h, all tensors on the device
int cuda_op_matmul(tensor_t *out, const tensor_t *x, const tensor_t *w, int accumulate);
int cuda_op_rmsnorm(tensor_t *out, const tensor_t *x, const tensor_t *w, float eps);
int cuda_op_rope(tensor_t *x, const tensor_t *pos, double theta);
int cuda_op_add(tensor_t *out, const tensor_t *a, const tensor_t *b);
int cuda_op_swiglu(tensor_t *out, const tensor_t *gate, const tensor_t *up);
int cuda_op_embedding(tensor_t *out, const tensor_t *table, const tensor_t *ids);
int cuda_op_softmax(tensor_t *x);
int cuda_op_logsoftmax_gather(tensor_t *out, const tensor_t *logits, const tensor_t *ids,
                              float temperature);
int cuda_op_kv_store(tensor_t *k_pool, tensor_t *v_pool, const tensor_t *k, const tensor_t *v,
                     const tensor_t *slots);
int cuda_op_attention(tensor_t *out, const tensor_t *q, const tensor_t *k_pool,
                      const tensor_t *v_pool, const tensor_t *seq_info, const tensor_t *page_table);

// backward ops (backward.cu): the signatures of the op_*_backward in kernels/kernels.h; shapes
// are checked in kernels/backward.c. Deterministic: no float atomics, every sum in a fixed order.
// matmul_backward: when the two operands of a product differ in dtype, the F32 one is rounded to
// the other's (as in cuda_op_matmul: with BF16 w, dx sees dout rounded to BF16; with BF16 x, dw
// does), F32 accumulation. embedding_backward and logsoftmax_gather_backward check every id before
// writing anything (they synchronize). attention_backward: head dims up to 256.
int cuda_op_matmul_backward(tensor_t *dx, tensor_t *dw, const tensor_t *dout, const tensor_t *x,
                            const tensor_t *w, int accumulate);
int cuda_op_rmsnorm_backward(tensor_t *dx, tensor_t *dw, const tensor_t *dout, const tensor_t *x,
                             const tensor_t *w, float eps, int accumulate);
int cuda_op_rope_backward(tensor_t *dx, const tensor_t *pos, double theta);
int cuda_op_swiglu_backward(tensor_t *dgate, tensor_t *dup, const tensor_t *dout,
                            const tensor_t *gate, const tensor_t *up);
int cuda_op_embedding_backward(tensor_t *dtable, const tensor_t *dout, const tensor_t *ids);
int cuda_op_logsoftmax_gather_backward(tensor_t *dlogits, const tensor_t *logits,
                                       const tensor_t *ids, const tensor_t *dlp, float temperature);
int cuda_op_softmax_entropy(tensor_t *out, const tensor_t *logits, float temperature);
int cuda_op_attention_backward(tensor_t *dq, tensor_t *dk, tensor_t *dv, const tensor_t *dout,
                               const tensor_t *q, const tensor_t *k, const tensor_t *v);

#ifdef __cplusplus
}
#endif
