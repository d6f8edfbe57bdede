// lmhead.cu: the CUDA half of kernels/lmhead.h: per chunk of R rows, one cuBLAS GEMM into an
// (R, V) F32 workspace, then one block per row (log-softmax gather + entropy, or the logits'
// gradient), and for the backward two more GEMMs (dh, dw).
#include "kernels/cuda/common.cuh"
#include "kernels/lmhead.h"

#define LMHEAD_THREADS 256

// the logits workspace, reused across calls (grows, never shrinks; one host thread at a time)
static float *lmhead_ws = NULL;
static size_t lmhead_ws_bytes = 0;

static float *lmhead_workspace(size_t n) {
    if (n > lmhead_ws_bytes) {
        cuda_free(lmhead_ws);
        lmhead_ws = NULL;
        lmhead_ws_bytes = 0;
        if (cuda_alloc((void **)&lmhead_ws, n)) return NULL;
        lmhead_ws_bytes = n;
    }
    return lmhead_ws;
}

struct reduce_fmaxf {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

static __device__ float lm_block_max(float x) { return block_reduce(x, -INFINITY, reduce_fmaxf()); }

// row r of the chunk (logits (R, V) F32): lp[n0 + r] and ent[n0 + r] (ent may be NULL), as
// cpu_op_logsoftmax_gather / cpu_op_softmax_entropy compute them (max, then sums in double)
static __global__ void lmhead_rows_kernel(float *lp, float *ent, const float *logits,
                                          const int32_t *ids, int64_t V, float inv_t, int64_t n0,
                                          int *err) {
    const int64_t r = blockIdx.x, n = n0 + r;
    const float *row = logits + r * V;
    const int32_t id = ids[n]; // uniform over the block
    if (id < 0 || id >= V) {
        if (threadIdx.x == 0) record_error(err, CUDA_ERR_ID, (int)n, id, (int)V);
        return;
    }
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, row[i]);
    m = lm_block_max(m);
    double s = 0.0, ez = 0.0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        float z = (row[i] - m) * inv_t, e = expf(z);
        s += e;
        ez += (double)z * e;
    }
    s = block_sum_f64(s);
    if (ent) ez = block_sum_f64(ez);
    if (threadIdx.x == 0) {
        lp[n] = (float)((double)((row[id] - m) * inv_t) - log(s));
        if (ent) ent[n] = (float)(log(s) - ez / s);
    }
}

// in place: dlogits (R, V) = dlp[n] * (onehot(ids[n]) - softmax(logits / t)) / t, as
// cpu_op_logsoftmax_gather_backward
static __global__ void lmhead_dlogits_kernel(float *logits, const float *dlp, const int32_t *ids,
                                             int64_t V, float inv_t, int64_t n0, int *err) {
    const int64_t r = blockIdx.x, n = n0 + r;
    float *row = logits + r * V;
    const int32_t id = ids[n];
    if (id < 0 || id >= V) {
        if (threadIdx.x == 0) record_error(err, CUDA_ERR_ID, (int)n, id, (int)V);
        return;
    }
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, row[i]);
    m = lm_block_max(m);
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += expf((row[i] - m) * inv_t);
    s = block_sum_f64(s); // every thread has read its entries before any is overwritten below
    const float scale = dlp[n] * inv_t, inv_sum = (float)(1.0 / s);
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        float d = -scale * expf((row[i] - m) * inv_t) * inv_sum;
        row[i] = i == id ? d + scale : d;
    }
}

static int lmhead_ids_error(const char *op) {
    int rec[4];
    if (cuda_errrec_read(rec)) return -1;
    if (rec[0] == CUDA_ERR_ID)
        return err_set("cuda %s: ids[%d] = %d is outside the vocabulary [0, %d)", op, rec[1], rec[2],
                       rec[3]);
    return 0;
}

// rows [n0, n0 + r) of a row-major (., cols) tensor
static tensor_t lm_rows(const tensor_t *t, int64_t n0, int64_t r, int64_t cols) {
    int64_t shape[2] = {r, cols};
    return tensor_view((char *)t->data + (size_t)(n0 * cols) * dtype_size(t->dtype), t->dtype,
                       t->device, 2, shape);
}

extern "C" int cuda_lmhead_logprob(tensor_t *lp, tensor_t *ent, const tensor_t *h,
                                   const tensor_t *w, const tensor_t *ids, float temperature,
                                   int64_t R) {
    const int64_t N = h->shape[0], C = h->shape[1], V = w->shape[0];
    if (V > INT32_MAX || R > INT32_MAX) return err_set("cuda lmhead_logprob: V too large");
    float *ws = lmhead_workspace((size_t)(R * V) * sizeof(float));
    if (!ws) return -1;
    int *err;
    if (cuda_errrec_reset(&err)) return -1;
    const int64_t wshape[2] = {R, V};
    tensor_t whole = tensor_view(ws, DTYPE_F32, DEVICE_CUDA, 2, wshape);
    const float inv_t = 1.0f / temperature;
    for (int64_t n0 = 0; n0 < N; n0 += R) {
        const int64_t r = N - n0 < R ? N - n0 : R;
        tensor_t hv = lm_rows(h, n0, r, C), lv = lm_rows(&whole, 0, r, V);
        if (cuda_op_matmul(&lv, &hv, w, 0)) return -1;
        lmhead_rows_kernel<<<(unsigned)r, LMHEAD_THREADS>>>(
            (float *)lp->data, ent ? (float *)ent->data : NULL, ws, (const int32_t *)ids->data, V,
            inv_t, n0, err);
        CUDA_CHECK_LAUNCH();
    }
    return lmhead_ids_error("lmhead_logprob");
}

extern "C" int cuda_lmhead_logprob_backward(tensor_t *dh, tensor_t *dw, const tensor_t *dlp,
                                            const tensor_t *h, const tensor_t *w,
                                            const tensor_t *ids, float temperature, int64_t R,
                                            int accumulate) {
    const int64_t N = h->shape[0], C = h->shape[1], V = w->shape[0];
    if (h->dtype != DTYPE_F32 || w->dtype != DTYPE_F32 || (dh && dh->dtype != DTYPE_F32) ||
        (dw && dw->dtype != DTYPE_F32))
        return err_set("cuda lmhead_logprob_backward: F32 h, w, dh and dw only (for now)");
    if (V > INT32_MAX || C > INT32_MAX || R > INT32_MAX)
        return err_set("cuda lmhead_logprob_backward: dimensions exceed cuBLAS's int range");
    float *ws = lmhead_workspace((size_t)(R * V) * sizeof(float));
    if (!ws) return -1;
    cublasHandle_t bh = cuda_blas();
    if (!bh) return -1;
    int *err;
    if (cuda_errrec_reset(&err)) return -1;
    const int64_t wshape[2] = {R, V};
    tensor_t whole = tensor_view(ws, DTYPE_F32, DEVICE_CUDA, 2, wshape);
    const float inv_t = 1.0f / temperature, one = 1.0f, beta_dh = accumulate ? 1.0f : 0.0f;
    for (int64_t n0 = 0; n0 < N; n0 += R) {
        const int64_t r = N - n0 < R ? N - n0 : R;
        tensor_t hv = lm_rows(h, n0, r, C), lv = lm_rows(&whole, 0, r, V);
        if (cuda_op_matmul(&lv, &hv, w, 0)) return -1;
        lmhead_dlogits_kernel<<<(unsigned)r, LMHEAD_THREADS>>>(ws, (const float *)dlp->data,
                                                              (const int32_t *)ids->data, V,
                                                              inv_t, n0, err);
        CUDA_CHECK_LAUNCH();
        // column-major view: dh^T (C, r) = w^T (C, V) @ dlogits^T (V, r)
        if (dh)
            CUBLAS_CHECK(cublasGemmEx(bh, CUBLAS_OP_N, CUBLAS_OP_N, (int)C, (int)r, (int)V, &one,
                                      w->data, CUDA_R_32F, (int)C, ws, CUDA_R_32F, (int)V,
                                      &beta_dh, (float *)dh->data + n0 * C, CUDA_R_32F, (int)C,
                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        // dw^T (C, V) += h^T (C, r) @ dlogits (r, V)
        if (dw)
            CUBLAS_CHECK(cublasGemmEx(bh, CUBLAS_OP_N, CUBLAS_OP_T, (int)C, (int)V, (int)r, &one,
                                      hv.data, CUDA_R_32F, (int)C, ws, CUDA_R_32F, (int)V, &one,
                                      dw->data, CUDA_R_32F, (int)C, CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
    }
    return lmhead_ids_error("lmhead_logprob_backward");
}
