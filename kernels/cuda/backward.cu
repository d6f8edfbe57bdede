// backward.cu: the backward ops on CUDA (kernels.h, "ops (backward)"); the formulas are those of
// kernels/cpu/backward.c, the per-element math is in rowops_bwd.h.
//
// Determinism: no float atomics anywhere. Every sum that several threads contribute to is either
// owned by one thread that adds its terms in a fixed order (embedding rows, dW column chunks, the
// dK/dV of one key row), or reduced through shared memory in a fixed order. So every op gives the
// same bits on every run (on one GPU model with one cuBLAS version).
//
// Correct before fast, as attention.cu: attention backward recomputes the softmax per query row
// (one block per (b, h, query row): the row's max, 1/sum and delta = sum_j P dP, then dQ), and a
// second kernel gives dK/dV with one block per (b, KV head, key row) that loops over the heads of
// its group and the query rows that see the key. A flash-style tiled kernel replaces it later.
#include <limits.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/rowops_bwd.h"

static size_t align256(size_t n) { return (n + 255) / 256 * 256; }

// ---- matmul ----

static cudaDataType_t blas_type(dtype_t dt) {
    switch (dt) {
    case DTYPE_BF16: return CUDA_R_16BF;
    case DTYPE_F16: return CUDA_R_16F;
    default: return CUDA_R_32F;
    }
}

// column-major C (m, n) = op(A) op(B) + beta C through cublasGemmEx, F32 accumulation (no TF32).
// A, B are whole contiguous matrices of a_n, b_n elements. cuBLAS wants A and B in one dtype: when
// they differ, the F32 one is rounded to the other's dtype (as the forward matmul rounds x to w's
// dtype; BF16 vs F16: B goes to A's dtype). C must be F32 or that dtype, else it goes through an
// F32 buffer of c_n elements.
static int gemm_mixed(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                      const void *A, dtype_t adt, int lda, int64_t a_n, const void *B,
                      dtype_t bdt, int ldb, int64_t b_n, float beta, void *C, dtype_t cdt, int ldc,
                      int64_t c_n) {
    cublasHandle_t h = cuda_blas();
    if (!h) return -1;
    dtype_t dt = adt;
    int conv_a = 0, conv_b = 0;
    if (adt != bdt) {
        if (adt == DTYPE_F32) conv_a = 1, dt = bdt;
        else conv_b = 1;
    }
    size_t abytes = conv_a ? align256((size_t)a_n * dtype_size(dt)) : 0;
    size_t bbytes = conv_b ? align256((size_t)b_n * dtype_size(dt)) : 0;
    int c_via_f32 = cdt != DTYPE_F32 && cdt != dt;
    size_t cbytes = c_via_f32 ? (size_t)c_n * sizeof(float) : 0;
    char *s = NULL;
    if (abytes + bbytes + cbytes > 0 && !(s = (char *)cuda_scratch(abytes + bbytes + cbytes)))
        return -1;
    if (conv_a) {
        if (cuda_convert(s, dt, A, adt, a_n)) return -1;
        A = s;
    }
    if (conv_b) {
        if (cuda_convert(s + abytes, dt, B, bdt, b_n)) return -1;
        B = s + abytes;
    }
    void *cd = C;
    dtype_t cd_dt = cdt;
    if (c_via_f32) {
        cd = s + abytes + bbytes;
        cd_dt = DTYPE_F32;
        if (beta != 0.0f && cuda_convert(cd, DTYPE_F32, C, cdt, c_n)) return -1;
    }
    float alpha = 1.0f;
    CUBLAS_CHECK(cublasGemmEx(h, ta, tb, m, n, k, &alpha, A, blas_type(dt), lda, B, blas_type(dt),
                              ldb, &beta, cd, blas_type(cd_dt), ldc, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    if (c_via_f32) return cuda_convert(C, cdt, cd, DTYPE_F32, c_n);
    return 0;
}

// Row-major (R, C) is column-major (C, R) with the same bytes (see matmul.cu). So
//   dx (N, I) = dout (N, O) @ w (O, I)    is  dx' (I, N) = w' (I, O) @ dout' (O, N): N, N
//   dw (O, I) += dout^T (O, N) @ x (N, I) is  dw' (I, O) += x' (I, N) @ (dout' (O, N))^T: N, T
// where ' is the column-major reading of the row-major buffer.
extern "C" int cuda_op_matmul_backward(tensor_t *dx, tensor_t *dw, const tensor_t *dout,
                                       const tensor_t *x, const tensor_t *w, int accumulate) {
    const char *op = "matmul_backward";
    if (cuda_check_float(op, "dout", dout->dtype) || cuda_check_float(op, "x", x->dtype) ||
        cuda_check_float(op, "w", w->dtype) || (dx && cuda_check_float(op, "dx", dx->dtype)) ||
        (dw && cuda_check_float(op, "dw", dw->dtype)))
        return -1;
    int64_t O = w->shape[0], I = w->shape[1], N = x->ndim ? x->shape[0] : 1;
    if (N > INT_MAX || O > INT_MAX || I > INT_MAX)
        return err_set("cuda matmul_backward: dimensions N=%lld O=%lld I=%lld exceed cuBLAS's int "
                       "range", (long long)N, (long long)O, (long long)I);
    if (N == 0 || I == 0) return 0; // dx is empty, dw += 0
    if (O == 0) // empty sums: dx = 0 (unchanged when accumulating), dw is empty
        return dx && !accumulate ? cuda_set_zero(dx->data, tensor_nbytes(dx)) : 0;
    if (dx && gemm_mixed(CUBLAS_OP_N, CUBLAS_OP_N, (int)I, (int)N, (int)O, w->data, w->dtype,
                         (int)I, O * I, dout->data, dout->dtype, (int)O, N * O,
                         accumulate ? 1.0f : 0.0f, dx->data, dx->dtype, (int)I, N * I))
        return -1;
    if (dw && gemm_mixed(CUBLAS_OP_N, CUBLAS_OP_T, (int)I, (int)O, (int)N, x->data, x->dtype,
                         (int)I, N * I, dout->data, dout->dtype, (int)O, N * O, 1.0f, dw->data,
                         dw->dtype, (int)I, O * I))
        return -1;
    return 0;
}

// ---- rmsnorm ----

#define RMS_CHUNK 64 // rows per partial sum of dw

// per row r of x (R, C): inv[r] = rms_inv, coef[r] = inv^3 / C * sum_c g w x (when coef != NULL)
static __global__ void rmsnorm_bwd_stats_kernel(float *inv, float *coef, const void *g,
                                                dtype_t gdt, const void *x, dtype_t xdt,
                                                const void *w, dtype_t wdt, int64_t C, float eps) {
    int64_t r = blockIdx.x, row = r * C;
    float ss = 0.0f, dot = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float xv = load_f32(x, xdt, row + c);
        ss += xv * xv;
        if (coef) dot += load_f32(g, gdt, row + c) * load_f32(w, wdt, c) * xv;
    }
    float iv = rowops_rms_inv(block_sum(ss), C, eps);
    if (coef) dot = block_sum(dot); // uniform branch: coef is a kernel argument
    if (threadIdx.x == 0) {
        inv[r] = iv;
        if (coef) coef[r] = rowops_rmsnorm_bwd_coef(iv, dot, C);
    }
}

// part (chunks, C): the sum over the chunk's RMS_CHUNK rows of g x inv, rows in order;
// grid (column blocks, chunks)
static __global__ void rmsnorm_bwd_dw_part_kernel(float *part, const void *g, dtype_t gdt,
                                                  const void *x, dtype_t xdt, const float *inv,
                                                  int64_t R, int64_t C) {
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, k = blockIdx.y;
    if (c >= C) return;
    int64_t r1 = (k + 1) * RMS_CHUNK < R ? (k + 1) * RMS_CHUNK : R;
    float acc = 0.0f;
    for (int64_t r = k * RMS_CHUNK; r < r1; r++)
        acc += load_f32(g, gdt, r * C + c) * load_f32(x, xdt, r * C + c) * inv[r];
    part[k * C + c] = acc;
}

// dw[c] += the chunks' partial sums, chunks in order
static __global__ void rmsnorm_bwd_dw_sum_kernel(void *dw, dtype_t dwdt, const float *part,
                                                 int64_t chunks, int64_t C) {
    GRID_STRIDE(c, C) {
        float acc = 0.0f;
        for (int64_t k = 0; k < chunks; k++)
            acc += part[k * C + c];
        store_f32(dw, dwdt, c, load_f32(dw, dwdt, c) + acc);
    }
}

// dx (R, C) (+)= inv w g - coef x; dx may alias g (each element is read, then written, by one
// thread)
static __global__ void rmsnorm_bwd_dx_kernel(void *dx, dtype_t dxdt, const void *g, dtype_t gdt,
                                             const void *x, dtype_t xdt, const void *w,
                                             dtype_t wdt, const float *inv, const float *coef,
                                             int64_t R, int64_t C, int accumulate) {
    GRID_STRIDE(i, R * C) {
        int64_t r = i / C, c = i % C;
        float v = rowops_rmsnorm_bwd_elem(load_f32(g, gdt, i), load_f32(x, xdt, i),
                                          load_f32(w, wdt, c), inv[r], coef[r]);
        if (accumulate) v += load_f32(dx, dxdt, i);
        store_f32(dx, dxdt, i, v);
    }
}

extern "C" int cuda_op_rmsnorm_backward(tensor_t *dx, tensor_t *dw, const tensor_t *dout,
                                        const tensor_t *x, const tensor_t *w, float eps,
                                        int accumulate) {
    const char *op = "rmsnorm_backward";
    if (cuda_check_float(op, "dout", dout->dtype) || cuda_check_float(op, "x", x->dtype) ||
        cuda_check_float(op, "w", w->dtype) || (dx && cuda_check_float(op, "dx", dx->dtype)) ||
        (dw && cuda_check_float(op, "dw", dw->dtype)))
        return -1;
    int64_t C = x->ndim ? x->shape[x->ndim - 1] : 1, R = C > 0 ? tensor_numel(x) / C : 0;
    if (R == 0 || C == 0 || (!dx && !dw)) return 0;
    if (R > INT32_MAX) return err_set("cuda rmsnorm_backward: %lld rows exceed the grid", (long long)R);
    int64_t chunks = (R + RMS_CHUNK - 1) / RMS_CHUNK, cblocks = (C + CUDA_THREADS - 1) / CUDA_THREADS;
    if (dw && (chunks > 65535 || cblocks > INT32_MAX))
        return err_set("cuda rmsnorm_backward: %lld rows of %lld exceed the grid", (long long)R,
                       (long long)C);
    // scratch: inv (R), coef (R), part (chunks, C)
    size_t rbytes = align256((size_t)R * sizeof(float));
    size_t pbytes = dw ? (size_t)(chunks * C) * sizeof(float) : 0;
    char *s = (char *)cuda_scratch(2 * rbytes + pbytes);
    if (!s) return -1;
    float *inv = (float *)s, *coef = dx ? (float *)(s + rbytes) : NULL, *part = (float *)(s + 2 * rbytes);
    rmsnorm_bwd_stats_kernel<<<(unsigned)R, CUDA_THREADS>>>(inv, coef, dout->data, dout->dtype,
                                                            x->data, x->dtype, w->data, w->dtype,
                                                            C, eps);
    CUDA_CHECK_LAUNCH();
    if (dw) { // before dx: dx may alias dout
        dim3 grid((unsigned)cblocks, (unsigned)chunks);
        rmsnorm_bwd_dw_part_kernel<<<grid, CUDA_THREADS>>>(part, dout->data, dout->dtype, x->data,
                                                           x->dtype, inv, R, C);
        CUDA_CHECK_LAUNCH();
        rmsnorm_bwd_dw_sum_kernel<<<cuda_blocks(C), CUDA_THREADS>>>(dw->data, dw->dtype, part,
                                                                    chunks, C);
        CUDA_CHECK_LAUNCH();
    }
    if (dx) {
        rmsnorm_bwd_dx_kernel<<<cuda_blocks(R * C), CUDA_THREADS>>>(
            dx->data, dx->dtype, dout->data, dout->dtype, x->data, x->dtype, w->data, w->dtype,
            inv, coef, R, C, accumulate);
        CUDA_CHECK_LAUNCH();
    }
    return 0;
}

// ---- rope ----

// dx (N, H, D) rotated back in place: the forward's kernel with the opposite angle (sin negated
// exactly; rowops_rope_pair_bwd is the same rotation written out, checked on the host)
extern "C" int cuda_op_rope_backward(tensor_t *dx, const tensor_t *pos, double theta) {
    return cuda_rope_rotate(dx, pos, theta, 1, "rope_backward");
}

// ---- swiglu ----

// dgate, dup (=) from dout, gate, up; either output may be NULL or alias dout (each element is
// read, then written, by one thread)
static __global__ void swiglu_bwd_kernel(void *da, dtype_t dadt, void *du, dtype_t dudt,
                                         const void *g, dtype_t gdt, const void *a, dtype_t adt,
                                         const void *u, dtype_t udt, int64_t n) {
    GRID_STRIDE(i, n) {
        float dav, duv;
        rowops_swiglu_bwd(load_f32(g, gdt, i), load_f32(a, adt, i), load_f32(u, udt, i), &dav,
                          &duv);
        if (da) store_f32(da, dadt, i, dav);
        if (du) store_f32(du, dudt, i, duv);
    }
}

extern "C" int cuda_op_swiglu_backward(tensor_t *dgate, tensor_t *dup, const tensor_t *dout,
                                       const tensor_t *gate, const tensor_t *up) {
    const char *op = "swiglu_backward";
    if (cuda_check_float(op, "dout", dout->dtype) || cuda_check_float(op, "gate", gate->dtype) ||
        cuda_check_float(op, "up", up->dtype) ||
        (dgate && cuda_check_float(op, "dgate", dgate->dtype)) ||
        (dup && cuda_check_float(op, "dup", dup->dtype)))
        return -1;
    int64_t n = tensor_numel(dout);
    if (n == 0 || (!dgate && !dup)) return 0;
    swiglu_bwd_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(
        dgate ? dgate->data : NULL, dgate ? dgate->dtype : DTYPE_F32, dup ? dup->data : NULL,
        dup ? dup->dtype : DTYPE_F32, dout->data, dout->dtype, gate->data, gate->dtype, up->data,
        up->dtype, n);
    CUDA_CHECK_LAUNCH();
    return 0;
}

// ---- ids check (embedding, log-softmax gather) ----

// records the first id outside [0, bound) (which one is first depends on the schedule; any bad
// id makes the op fail, the message names one)
static __global__ void ids_check_kernel(const int32_t *ids, int64_t n, int64_t bound, int *err) {
    GRID_STRIDE(i, n) {
        int32_t id = ids[i];
        if (id < 0 || id >= bound) record_error(err, CUDA_ERR_ID, (int)i, id, (int)bound);
    }
}

// checks every id before anything is written (as the CPU backend does); synchronizes
static int ids_check(const char *op, const char *what, const tensor_t *ids, int64_t bound) {
    int64_t n = tensor_numel(ids);
    int *err, rec[4];
    if (cuda_errrec_reset(&err)) return -1;
    ids_check_kernel<<<cuda_blocks(n), CUDA_THREADS>>>((const int32_t *)ids->data, n, bound, err);
    CUDA_CHECK_LAUNCH();
    if (cuda_errrec_read(rec)) return -1;
    if (rec[0] == CUDA_ERR_ID)
        return err_set("cuda %s: ids[%d] = %d is outside the %s [0, %d)", op, rec[1], rec[2], what,
                       rec[3]);
    return 0;
}

// ---- embedding ----

// dtable (V, C) += dout (N, C) rows at ids. Thread (column c, bucket k) owns the entries (id, c)
// with id % buckets == k and adds their rows n = 0, 1, ... in order: no two threads touch one
// entry, and repeated ids add up in the CPU's order (so F32 results equal the CPU's bit for bit).
// grid (column blocks, buckets)
static __global__ void embedding_bwd_kernel(void *dt, dtype_t tdt, const void *g, dtype_t gdt,
                                            const int32_t *__restrict__ ids, int64_t N, int64_t V,
                                            int64_t C) {
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    int k = blockIdx.y, buckets = gridDim.y;
    if (c >= C) return;
    for (int64_t n = 0; n < N; n++) {
        int32_t id = ids[n];
        if (id < 0 || id >= V || id % buckets != k) continue; // bad ids were rejected before
        int64_t at = (int64_t)id * C + c;
        store_f32(dt, tdt, at, load_f32(dt, tdt, at) + load_f32(g, gdt, n * C + c));
    }
}

extern "C" int cuda_op_embedding_backward(tensor_t *dtable, const tensor_t *dout,
                                          const tensor_t *ids) {
    const char *op = "embedding_backward";
    if (cuda_check_float(op, "dtable", dtable->dtype) || cuda_check_float(op, "dout", dout->dtype) ||
        cuda_check_i32(op, "ids", ids))
        return -1;
    int64_t V = dtable->shape[0], C = dtable->shape[1], N = tensor_numel(ids);
    if (N == 0) return 0;
    if (V > INT32_MAX || N > INT32_MAX)
        return err_set("cuda embedding_backward: %lld rows of a %lld-row table exceed the int range",
                       (long long)N, (long long)V);
    if (ids_check(op, "table's rows", ids, V)) return -1;
    if (C == 0) return 0;
    int64_t cblocks = (C + CUDA_THREADS - 1) / CUDA_THREADS;
    if (cblocks > INT32_MAX) return err_set("cuda embedding_backward: %lld columns", (long long)C);
    // enough blocks to fill the GPU; any bucket count gives the same result
    int64_t buckets = 512 / cblocks;
    if (buckets < 1) buckets = 1;
    if (buckets > 64) buckets = 64;
    dim3 grid((unsigned)cblocks, (unsigned)buckets);
    embedding_bwd_kernel<<<grid, CUDA_THREADS>>>(dtable->data, dtable->dtype, dout->data,
                                                 dout->dtype, (const int32_t *)ids->data, N, V, C);
    CUDA_CHECK_LAUNCH();
    return 0;
}

// ---- log-softmax gather, entropy ----

// dlogits (R, V) = dlp[r] (onehot(ids[r]) - softmax(logits / t)) / t; one block per row; dlogits
// may alias logits (the first pass reads the whole row, the block syncs, then each element is read
// and written by one thread)
static __global__ void lsm_gather_bwd_kernel(void *dl, dtype_t dldt, const void *logits,
                                             dtype_t ldt, const int32_t *ids, const void *dlp,
                                             dtype_t dlpdt, int64_t V, float inv_t) {
    int64_t r = blockIdx.x, row = r * V;
    rowops_softmax_t st = rowops_softmax_init();
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
        st = rowops_softmax_push(st, load_f32(logits, ldt, row + i) * inv_t);
    st = block_softmax_merge(st);
    const float scale = load_f32(dlp, dlpdt, r) * inv_t, inv_sum = 1.0f / st.s;
    const int32_t id = ids[r];
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        float e = expf(load_f32(logits, ldt, row + i) * inv_t - st.m);
        store_f32(dl, dldt, row + i, rowops_lsm_gather_bwd_elem(e, inv_sum, scale, i == id));
    }
}

extern "C" int cuda_op_logsoftmax_gather_backward(tensor_t *dlogits, const tensor_t *logits,
                                                  const tensor_t *ids, const tensor_t *dlp,
                                                  float temperature) {
    const char *op = "logsoftmax_gather_backward";
    if (cuda_check_float(op, "dlogits", dlogits->dtype) ||
        cuda_check_float(op, "logits", logits->dtype) || cuda_check_i32(op, "ids", ids) ||
        cuda_check_float(op, "dlp", dlp->dtype))
        return -1;
    int64_t R = logits->shape[0], V = logits->shape[1];
    if (R == 0) return 0;
    if (R > INT32_MAX || V > INT32_MAX)
        return err_set("cuda %s: %lld rows of %lld exceed the int range", op, (long long)R,
                       (long long)V);
    if (ids_check(op, "vocabulary", ids, V)) return -1;
    if (V == 0) return 0;
    lsm_gather_bwd_kernel<<<(unsigned)R, CUDA_THREADS>>>(
        dlogits->data, dlogits->dtype, logits->data, logits->dtype, (const int32_t *)ids->data,
        dlp->data, dlp->dtype, V, 1.0f / temperature);
    CUDA_CHECK_LAUNCH();
    return 0;
}

// out (R) F32 = entropy of softmax(logits (R, V) / t); one block per row; sums in double as on
// the CPU
static __global__ void softmax_entropy_kernel(float *out, const void *logits, dtype_t ldt, int64_t V,
                                              float inv_t) {
    int64_t r = blockIdx.x, row = r * V;
    rowops_softmax_t st = rowops_softmax_init(); // only its max is used
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
        st = rowops_softmax_push(st, load_f32(logits, ldt, row + i));
    const float m = block_softmax_merge(st).m;
    double sum = 0.0, ez = 0.0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        float z = (load_f32(logits, ldt, row + i) - m) * inv_t;
        double e = (double)expf(z);
        sum += e;
        ez += (double)z * e;
    }
    sum = block_sum_f64(sum);
    ez = block_sum_f64(ez);
    if (threadIdx.x == 0) out[r] = rowops_entropy_finish(sum, ez);
}

extern "C" int cuda_op_softmax_entropy(tensor_t *out, const tensor_t *logits, float temperature) {
    if (out->dtype != DTYPE_F32)
        return err_set("cuda softmax_entropy: out: expected dtype F32, found %s",
                       dtype_name(out->dtype));
    if (cuda_check_float("softmax_entropy", "logits", logits->dtype)) return -1;
    int64_t R = logits->shape[0], V = logits->shape[1];
    if (R == 0) return 0;
    if (R > INT32_MAX) return err_set("cuda softmax_entropy: %lld rows exceed the grid", (long long)R);
    softmax_entropy_kernel<<<(unsigned)R, CUDA_THREADS>>>((float *)out->data, logits->data,
                                                          logits->dtype, V, 1.0f / temperature);
    CUDA_CHECK_LAUNCH();
    return 0;
}

// ---- attention ----
// q, dq, dout (B, T, Hq, D); k, v, dk, dv (B, T, Hkv, D); query head h uses KV head h / group.
// Lanes split the head dim: lane holds dims lane, lane + 32, ... (ABW_PER_LANE of them).

#define ABW_WARPS 4
#define ABW_MAX_D 256
#define ABW_PER_LANE (ABW_MAX_D / 32)

// r = the lane's dims of the row at base
static __device__ __forceinline__ void abw_load(float r[ABW_PER_LANE], const void *p, dtype_t dt,
                                                int64_t base, int D, int lane) {
#pragma unroll
    for (int t = 0; t < ABW_PER_LANE; t++) {
        int d = lane + 32 * t;
        r[t] = d < D ? load_f32(p, dt, base + d) : 0.0f;
    }
}

// a . (row at base), summed over the warp (every lane gets the same bits)
static __device__ __forceinline__ float abw_dot(const float a[ABW_PER_LANE], const void *p,
                                                dtype_t dt, int64_t base, int D, int lane) {
    float s = 0.0f;
#pragma unroll
    for (int t = 0; t < ABW_PER_LANE; t++) {
        int d = lane + 32 * t;
        if (d < D) s += a[t] * load_f32(p, dt, base + d);
    }
    return warp_sum(s);
}

// the same dot with both rows in registers
static __device__ __forceinline__ float abw_dot_regs(const float a[ABW_PER_LANE],
                                                     const float b[ABW_PER_LANE], int D, int lane) {
    float s = 0.0f;
#pragma unroll
    for (int t = 0; t < ABW_PER_LANE; t++)
        if (lane + 32 * t < D) s += a[t] * b[t];
    return warp_sum(s);
}

// One block per (query row i, query head h, sequence b): the row's softmax over keys 0..i
// (max m, 1/sum il), delta = sum_j P_ij dP_ij, and dQ_i = scale sum_j dS_ij K_j. Three passes over
// the keys (the scores are recomputed, nothing of size T is stored); warps take keys round-robin
// and their partial results are merged in warp order. Writes m, il, delta to stats (3, B, Hq, T).
static __global__ void attn_bwd_dq_kernel(void *dq, dtype_t dqdt, const void *g, dtype_t gdt,
                                          const void *q, dtype_t qdt, const void *k, dtype_t kdt,
                                          const void *v, dtype_t vdt, float *stats, int T, int Hq,
                                          int Hkv, int D, float scale) {
    const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int kvh = h / (Hq / Hkv);
    const int64_t qbase = (((int64_t)b * T + i) * Hq + h) * D;
    const int64_t st_at = ((int64_t)b * Hq + h) * T + i, st_n = (int64_t)gridDim.z * Hq * T;
#define KV_BASE(j) ((((int64_t)b * T + (j)) * Hkv + kvh) * D)
    float qr[ABW_PER_LANE], gr[ABW_PER_LANE];
    abw_load(qr, q, qdt, qbase, D, lane);
    abw_load(gr, g, gdt, qbase, D, lane);
    __shared__ float wa[ABW_WARPS], wb[ABW_WARPS];
    __shared__ float wacc[ABW_WARPS][ABW_MAX_D];

    // pass 1: max and sum of e^(s - max)
    rowops_softmax_t st = rowops_softmax_init();
    for (int j = warp; j <= i; j += ABW_WARPS)
        st = rowops_softmax_push(st, abw_dot(qr, k, kdt, KV_BASE(j), D, lane) * scale);
    if (lane == 0) {
        wa[warp] = st.m;
        wb[warp] = st.s;
    }
    __syncthreads();
    st = rowops_softmax_init();
    for (int w = 0; w < ABW_WARPS; w++) {
        rowops_softmax_t o;
        o.m = wa[w];
        o.s = wb[w];
        st = rowops_softmax_merge(st, o);
    }
    const float m = st.m, il = 1.0f / st.s;
    __syncthreads(); // wa / wb are reused

    // pass 2: delta = sum_j P_ij dP_ij, dP_ij = dO_i . V_j
    float pdp = 0.0f;
    for (int j = warp; j <= i; j += ABW_WARPS) {
        float p = expf(abw_dot(qr, k, kdt, KV_BASE(j), D, lane) * scale - m) * il;
        pdp += p * abw_dot(gr, v, vdt, KV_BASE(j), D, lane);
    }
    if (lane == 0) wa[warp] = pdp;
    __syncthreads();
    float delta = 0.0f;
    for (int w = 0; w < ABW_WARPS; w++)
        delta += wa[w];

    // pass 3: dQ_i = sum_j dS_ij K_j, dS_ij = P_ij (dP_ij - delta) scale
    float acc[ABW_PER_LANE];
#pragma unroll
    for (int t = 0; t < ABW_PER_LANE; t++)
        acc[t] = 0.0f;
    for (int j = warp; j <= i; j += ABW_WARPS) {
        float kr[ABW_PER_LANE];
        abw_load(kr, k, kdt, KV_BASE(j), D, lane);
        float p = expf(abw_dot_regs(qr, kr, D, lane) * scale - m) * il;
        float ds = p * (abw_dot(gr, v, vdt, KV_BASE(j), D, lane) - delta) * scale;
#pragma unroll
        for (int t = 0; t < ABW_PER_LANE; t++)
            acc[t] += ds * kr[t];
    }
#pragma unroll
    for (int t = 0; t < ABW_PER_LANE; t++) {
        int d = lane + 32 * t;
        if (d < D) wacc[warp][d] = acc[t];
    }
    __syncthreads();
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float s = 0.0f;
        for (int w = 0; w < ABW_WARPS; w++)
            s += wacc[w][d];
        store_f32(dq, dqdt, qbase + d, s);
    }
    if (threadIdx.x == 0) {
        stats[st_at] = m;
        stats[st_n + st_at] = il;
        stats[2 * st_n + st_at] = delta;
    }
#undef KV_BASE
}

// One block per (key row j, KV head kvh, sequence b): dK_j = scale sum dS_ij Q_i and
// dV_j = sum P_ij dO_i over the query heads h of the group (in order) and the query rows i >= j
// (round-robin over the warps, merged in warp order); P and dS from the stats of the dq kernel.
static __global__ void attn_bwd_dkv_kernel(void *dk, dtype_t dkdt, void *dv, dtype_t dvdt,
                                           const void *g, dtype_t gdt, const void *q, dtype_t qdt,
                                           const void *k, dtype_t kdt, const void *v, dtype_t vdt,
                                           const float *stats, int T, int Hq, int Hkv, int D,
                                           float scale) {
    const int j = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int group = Hq / Hkv;
    const int64_t kvbase = (((int64_t)b * T + j) * Hkv + kvh) * D;
    const int64_t st_n = (int64_t)gridDim.z * Hq * T;
    float kr[ABW_PER_LANE], vr[ABW_PER_LANE], ak[ABW_PER_LANE], av[ABW_PER_LANE];
    abw_load(kr, k, kdt, kvbase, D, lane);
    abw_load(vr, v, vdt, kvbase, D, lane);
#pragma unroll
    for (int t = 0; t < ABW_PER_LANE; t++)
        ak[t] = av[t] = 0.0f;
    for (int h = kvh * group; h < (kvh + 1) * group; h++)
        for (int i = j + warp; i < T; i += ABW_WARPS) {
            const int64_t qbase = (((int64_t)b * T + i) * Hq + h) * D;
            const int64_t st_at = ((int64_t)b * Hq + h) * T + i;
            float qr[ABW_PER_LANE], gr[ABW_PER_LANE];
            abw_load(qr, q, qdt, qbase, D, lane);
            abw_load(gr, g, gdt, qbase, D, lane);
            // the same expressions as the dq kernel (same products, same warp sums)
            float p = expf(abw_dot_regs(qr, kr, D, lane) * scale - stats[st_at]) * stats[st_n + st_at];
            float ds = p * (abw_dot_regs(gr, vr, D, lane) - stats[2 * st_n + st_at]) * scale;
#pragma unroll
            for (int t = 0; t < ABW_PER_LANE; t++) {
                ak[t] += ds * qr[t];
                av[t] += p * gr[t];
            }
        }
    __shared__ float wk[ABW_WARPS][ABW_MAX_D], wv[ABW_WARPS][ABW_MAX_D];
#pragma unroll
    for (int t = 0; t < ABW_PER_LANE; t++) {
        int d = lane + 32 * t;
        if (d < D) {
            wk[warp][d] = ak[t];
            wv[warp][d] = av[t];
        }
    }
    __syncthreads();
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float sk = 0.0f, sv = 0.0f;
        for (int w = 0; w < ABW_WARPS; w++) {
            sk += wk[w][d];
            sv += wv[w][d];
        }
        store_f32(dk, dkdt, kvbase + d, sk);
        store_f32(dv, dvdt, kvbase + d, sv);
    }
}

extern "C" int cuda_op_attention_backward(tensor_t *dq, tensor_t *dk, tensor_t *dv,
                                          const tensor_t *dout, const tensor_t *q,
                                          const tensor_t *k, const tensor_t *v) {
    const char *op = "attention_backward";
    const tensor_t *ts[] = {dq, dk, dv, dout, q, k, v};
    const char *nm[] = {"dq", "dk", "dv", "dout", "q", "k", "v"};
    for (int t = 0; t < 7; t++)
        if (cuda_check_float(op, nm[t], ts[t]->dtype)) return -1;
    int64_t B = q->shape[0], T = q->shape[1], Hq = q->shape[2], D = q->shape[3];
    int64_t Hkv = k->shape[2];
    if (B == 0 || T == 0 || Hq == 0 || D == 0) return 0;
    if (D > ABW_MAX_D)
        return err_set("cuda attention_backward: head dim %lld is above the kernel's maximum %d",
                       (long long)D, ABW_MAX_D);
    if (Hkv <= 0 || Hq % Hkv != 0)
        return err_set("cuda attention_backward: %lld query heads are not a multiple of %lld KV "
                       "heads", (long long)Hq, (long long)Hkv);
    if (T > INT32_MAX || Hq > 65535 || B > 65535)
        return err_set("cuda attention_backward: B=%lld T=%lld Hq=%lld exceed the grid",
                       (long long)B, (long long)T, (long long)Hq);
    float *stats = (float *)cuda_scratch((size_t)(3 * B * Hq * T) * sizeof(float));
    if (!stats) return -1;
    const float scale = 1.0f / sqrtf((float)D);
    attn_bwd_dq_kernel<<<dim3((unsigned)T, (unsigned)Hq, (unsigned)B), ABW_WARPS * 32>>>(
        dq->data, dq->dtype, dout->data, dout->dtype, q->data, q->dtype, k->data, k->dtype,
        v->data, v->dtype, stats, (int)T, (int)Hq, (int)Hkv, (int)D, scale);
    CUDA_CHECK_LAUNCH();
    attn_bwd_dkv_kernel<<<dim3((unsigned)T, (unsigned)Hkv, (unsigned)B), ABW_WARPS * 32>>>(
        dk->data, dk->dtype, dv->data, dv->dtype, dout->data, dout->dtype, q->data, q->dtype,
        k->data, k->dtype, v->data, v->dtype, stats, (int)T, (int)Hq, (int)Hkv, (int)D, scale);
    CUDA_CHECK_LAUNCH();
    return 0;
}
